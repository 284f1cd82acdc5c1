/* Framed serial protocol between the harness and the firmware (docs/PROTOCOL.md).
 *
 * Frame: 0xA5 0x5A | version u8 | type u8 | request id u16 | length u16 | payload | CRC-16
 * (CCITT-FALSE over version..payload), all little-endian. The parser checks the length against
 * the caller's buffer BEFORE copying anything, because a host, a cable or a fuzzer can send
 * anything. */
#ifndef KWS_PROTOCOL_H
#define KWS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_MAGIC0 0xA5u
#define KWS_MAGIC1 0x5Au
#define KWS_PROTOCOL_VERSION 1u
#define KWS_HEADER_SIZE 8u   /* magic(2) version type id(2) length(2) */
#define KWS_CRC_SIZE 2u
#define KWS_MAX_PAYLOAD 2056u /* 1024 audio samples + offset, or 1960 features */
#define KWS_BYTE_TIMEOUT_MS 200u /* a frame that stalls this long mid-way is dropped */

/* Requests; a response has the request's type | 0x80, an error has type KWS_T_ERROR. */
enum kws_type {
  KWS_T_HELLO = 0x01,
  KWS_T_INFER_FEATURES = 0x02,
  KWS_T_AUDIO_CHUNK = 0x03,
  KWS_T_INFER_AUDIO = 0x04,
  KWS_T_BENCH = 0x05,
  KWS_T_RESET = 0x06,
  KWS_T_RESPONSE = 0x80,
  KWS_T_ERROR = 0x7F,
};

enum kws_error {
  KWS_E_BAD_CRC = 1,
  KWS_E_BAD_LENGTH = 2,
  KWS_E_UNKNOWN_COMMAND = 3,
  KWS_E_BUSY = 4,
  KWS_E_BAD_VERSION = 5,
  KWS_E_BAD_ARGUMENT = 6,
  KWS_E_NO_INPUT = 7,
  KWS_E_MODEL = 8,
  KWS_E_TIMEOUT = 9, /* a frame stalled mid-way for KWS_BYTE_TIMEOUT_MS and was dropped */
};

/* Results of kws_read_frame. */
enum kws_status {
  KWS_OK = 0,
  KWS_ST_BAD_CRC = -1,
  KWS_ST_BAD_LENGTH = -2,
  KWS_ST_BAD_VERSION = -3,
  KWS_ST_TIMEOUT = -4, /* frame started but stalled; dropped (the next call hunts for a new frame) */
  KWS_ST_CLOSED = -5,  /* the link is gone (native build) */
};

typedef struct {
  uint8_t version;
  uint8_t type;
  uint16_t id;
  uint16_t length;
  uint8_t *payload; /* points into the caller's buffer */
} kws_frame_t;

/* Read one byte: 1 = got it, 0 = timeout, negative = link closed. timeout_ms 0 = wait forever. */
typedef int (*kws_read_fn)(uint8_t *byte, uint32_t timeout_ms);
typedef void (*kws_write_fn)(const uint8_t *data, size_t n);

uint16_t kws_crc16(uint16_t crc, const uint8_t *data, size_t n);

/* Wait for a frame; on KWS_OK frame->payload holds frame->length bytes (<= cap).
 * On an error status, frame->type/id are filled when the header was read, so the caller can
 * answer with an error frame that names the request. */
int kws_read_frame(kws_read_fn rd, uint8_t *buf, size_t cap, kws_frame_t *frame);

void kws_write_frame(kws_write_fn wr, uint8_t type, uint16_t id, const uint8_t *payload, uint16_t n);
void kws_write_error(kws_write_fn wr, uint16_t id, uint8_t code, uint8_t req_type, const char *msg);

/* Little-endian helpers. */
static inline void kws_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void kws_put_u32(uint8_t *p, uint32_t v) {
  kws_put_u16(p, (uint16_t)v);
  kws_put_u16(p + 2, (uint16_t)(v >> 16));
}
static inline void kws_put_u64(uint8_t *p, uint64_t v) {
  kws_put_u32(p, (uint32_t)v);
  kws_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t kws_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kws_get_u32(const uint8_t *p) {
  return (uint32_t)kws_get_u16(p) | ((uint32_t)kws_get_u16(p + 2) << 16);
}

#ifdef __cplusplus
}
#endif
#endif
