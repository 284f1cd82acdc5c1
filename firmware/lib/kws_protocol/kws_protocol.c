/* Frame reader/writer for the harness protocol. The reader hunts for the magic, so garbage on the
 * line is skipped; it never copies more than the caller's buffer holds. */
#include "kws_protocol.h"

#include <string.h>

uint16_t kws_crc16(uint16_t crc, const uint8_t *data, size_t n) {
  /* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor. */
  for (size_t i = 0; i < n; i++) {
    crc ^= (uint16_t)data[i] << 8;
    for (int b = 0; b < 8; b++) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
  }
  return crc;
}

/* Read exactly n bytes with the per-byte timeout; returns KWS_OK, KWS_ST_TIMEOUT or KWS_ST_CLOSED. */
static int read_exact(kws_read_fn rd, uint8_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int r = rd(&dst[i], KWS_BYTE_TIMEOUT_MS);
    if (r < 0) return KWS_ST_CLOSED;
    if (r == 0) return KWS_ST_TIMEOUT;
  }
  return KWS_OK;
}

int kws_read_frame(kws_read_fn rd, uint8_t *buf, size_t cap, kws_frame_t *frame) {
  uint8_t hdr[KWS_HEADER_SIZE];
  memset(frame, 0, sizeof *frame);
  /* Hunt for the two magic bytes; anything else is garbage and is skipped. */
  uint8_t prev = 0;
  for (;;) {
    uint8_t b;
    int r = rd(&b, 0);
    if (r < 0) return KWS_ST_CLOSED;
    if (r == 0) continue;
    if (prev == KWS_MAGIC0 && b == KWS_MAGIC1) break;
    prev = b;
  }
  hdr[0] = KWS_MAGIC0;
  hdr[1] = KWS_MAGIC1;
  int st = read_exact(rd, hdr + 2, KWS_HEADER_SIZE - 2);
  if (st != KWS_OK) return st;
  frame->version = hdr[2];
  frame->type = hdr[3];
  frame->id = kws_get_u16(hdr + 4);
  frame->length = kws_get_u16(hdr + 6);
  if (frame->length > cap || frame->length > KWS_MAX_PAYLOAD) {
    /* Nothing is copied. The rest of that frame is skipped by the magic hunt of the next call;
     * no time-based drain, because not every link can time out a read (semihosting cannot). */
    return KWS_ST_BAD_LENGTH;
  }
  st = read_exact(rd, buf, frame->length);
  if (st != KWS_OK) return st;
  uint8_t crc_bytes[KWS_CRC_SIZE];
  st = read_exact(rd, crc_bytes, KWS_CRC_SIZE);
  if (st != KWS_OK) return st;
  uint16_t crc = kws_crc16(0xFFFFu, hdr + 2, KWS_HEADER_SIZE - 2);
  crc = kws_crc16(crc, buf, frame->length);
  if (crc != kws_get_u16(crc_bytes)) return KWS_ST_BAD_CRC;
  if (frame->version != KWS_PROTOCOL_VERSION) return KWS_ST_BAD_VERSION;
  frame->payload = buf;
  return KWS_OK;
}

void kws_write_frame(kws_write_fn wr, uint8_t type, uint16_t id, const uint8_t *payload, uint16_t n) {
  uint8_t hdr[KWS_HEADER_SIZE] = {KWS_MAGIC0, KWS_MAGIC1, KWS_PROTOCOL_VERSION, type};
  kws_put_u16(hdr + 4, id);
  kws_put_u16(hdr + 6, n);
  uint16_t crc = kws_crc16(0xFFFFu, hdr + 2, KWS_HEADER_SIZE - 2);
  crc = kws_crc16(crc, payload, n);
  uint8_t tail[KWS_CRC_SIZE];
  kws_put_u16(tail, crc);
  wr(hdr, sizeof hdr);
  if (n) wr(payload, n);
  wr(tail, sizeof tail);
}

void kws_write_error(kws_write_fn wr, uint16_t id, uint8_t code, uint8_t req_type, const char *msg) {
  uint8_t p[64];
  size_t m = msg ? strlen(msg) : 0;
  if (m > sizeof p - 2) m = sizeof p - 2;
  p[0] = code;
  p[1] = req_type;
  if (m) memcpy(p + 2, msg, m);
  kws_write_frame(wr, KWS_T_ERROR, id, p, (uint16_t)(m + 2));
}
