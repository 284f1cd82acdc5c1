/* The firmware core, top to bottom like TFLM's micro_speech: read a request frame, hand it to its
 * handler (features -> network, audio -> front end -> network, bench), answer with one frame.
 * Only the board layer knows the target; the timer brackets the measured work only, never the
 * serial link. Every payload length is checked before its bytes are used. */
#include "app.h"

#include <stdio.h>
#include <string.h>

#include "board.h"
#include "kws_frontend.h"
#include "kws_model.h"
#include "kws_protocol.h"

#include "kws_build_info.h" /* KWS_BUILD_CFLAGS, written by extra_script.py for every build */

#ifdef __GNUC__
#define KWS_COMPILER "gcc " __VERSION__
#else
#define KWS_COMPILER "unknown"
#endif

#ifdef KWS_BACKEND_TFLM
int kws_tflm_prepare(void); /* src/backend_tflm.cpp: AllocateTensors, once, at start-up */
#endif

#define AUDIO_SAMPLES 16000
#define MAX_CLASSES 64
#define BENCH_MAX_N 100000u

#if KWS_MODEL_OUTPUT_SIZE > MAX_CLASSES
#error "model has more outputs than the protocol carries"
#endif

static uint8_t rx[KWS_MAX_PAYLOAD];
static uint8_t tx[KWS_MAX_PAYLOAD];
static int8_t features[KWS_MODEL_INPUT_SIZE];
static int8_t scores[KWS_MODEL_OUTPUT_SIZE];
static int16_t audio[AUDIO_SAMPLES];
static uint32_t audio_len; /* samples received in order since the last chunk at offset 0 */
static uint32_t last_chunk_offset = UINT32_MAX; /* offset of the last chunk stored (a repeat is re-acknowledged) */
static int have_features;

static void respond(const kws_frame_t *req, const uint8_t *p, uint16_t n) {
  kws_write_frame(board_uart_write, (uint8_t)(req->type | KWS_T_RESPONSE), req->id, p, n);
}

static void fail(const kws_frame_t *req, uint8_t code, const char *msg) {
  kws_write_error(board_uart_write, req->id, code, req->type, msg);
}

static int argmax(const int8_t *s, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (s[i] > s[best]) best = i;
  return best;
}

/* How the generated model stores each layer's weights (codegen: int8, 2/4/6-bit packed). */
#ifndef KWS_MODEL_WEIGHT_FORMAT
#define KWS_MODEL_WEIGHT_FORMAT "as in the .tflite"
#endif

static void handle_hello(const kws_frame_t *req) {
  int n = snprintf((char *)tx, sizeof tx,
                   "protocol=%u\nfirmware=%s\nbuild_hash=%s\nmodel_id=%s\nbackend=%s\nboard=%s\n"
                   "clock_hz=%lu\ntimer_unit=%s\ntimer_source=%s\ninput_size=%u\noutput_size=%u\n"
                   "arena_bytes=%lu\nram_bytes=%lu\nmax_payload=%u\naudio_samples=%u\n"
                   "compiler=%s\ncflags=%s\ntiming=%s\nweights=%s\n",
                   KWS_PROTOCOL_VERSION, KWS_FIRMWARE_VERSION, KWS_BUILD_HASH, (const char *)kws_model_id,
                   KWS_BACKEND_NAME, board_name(), (unsigned long)board_clock_hz(), board_timer_unit(),
                   board_timer_source(), (unsigned)KWS_MODEL_INPUT_SIZE, (unsigned)KWS_MODEL_OUTPUT_SIZE,
                   (unsigned long)kws_model_arena_bytes, (unsigned long)board_ram_bytes(),
                   (unsigned)KWS_MAX_PAYLOAD, (unsigned)AUDIO_SAMPLES, KWS_COMPILER, KWS_BUILD_CFLAGS,
                   board_timing_method(), KWS_MODEL_WEIGHT_FORMAT);
  if (n < 0 || n >= (int)sizeof tx) n = (int)sizeof tx - 1;
  respond(req, tx, (uint16_t)n);
}

/* Response of both INFER requests: class u8, n u8, reserved u16, then u32 timings, then scores. */
static void respond_scores(const kws_frame_t *req, const uint32_t *times, int n_times) {
  uint8_t *p = tx;
  p[0] = (uint8_t)argmax(scores, KWS_MODEL_OUTPUT_SIZE);
  p[1] = (uint8_t)KWS_MODEL_OUTPUT_SIZE;
  kws_put_u16(p + 2, 0);
  p += 4;
  for (int i = 0; i < n_times; i++, p += 4) kws_put_u32(p, times[i]);
  memcpy(p, scores, KWS_MODEL_OUTPUT_SIZE);
  p += KWS_MODEL_OUTPUT_SIZE;
  respond(req, tx, (uint16_t)(p - tx));
}

static void handle_infer_features(const kws_frame_t *req) {
  if (req->length != KWS_MODEL_INPUT_SIZE) {
    fail(req, KWS_E_BAD_LENGTH, "features length != model input size");
    return;
  }
  memcpy(features, req->payload, KWS_MODEL_INPUT_SIZE);
  have_features = 1;
  board_timer_restart();
  int rc = kws_model_invoke(features, scores);
  uint32_t t = (uint32_t)board_timer_read();
  if (rc != 0) {
    fail(req, KWS_E_MODEL, "model invoke failed");
    return;
  }
  respond_scores(req, &t, 1);
}

static void handle_audio_chunk(const kws_frame_t *req) {
  if (req->length < 2 || (req->length - 2) % 2) {
    fail(req, KWS_E_BAD_LENGTH, "chunk: offset u16 + int16 samples");
    return;
  }
  uint32_t offset = kws_get_u16(req->payload);
  uint32_t count = (req->length - 2u) / 2u;
  /* A repeat of the last chunk (its answer was lost and the host sent it again) is stored again and
   * acknowledged again: every request stays idempotent. */
  if (offset != 0 && offset != audio_len && offset != last_chunk_offset) {
    fail(req, KWS_E_BAD_ARGUMENT, "chunk offset out of order");
    return;
  }
  if (offset + count > AUDIO_SAMPLES) {
    fail(req, KWS_E_BAD_LENGTH, "audio longer than the buffer");
    return;
  }
  for (uint32_t i = 0; i < count; i++) audio[offset + i] = (int16_t)kws_get_u16(req->payload + 2 + 2 * i);
  audio_len = offset + count;
  last_chunk_offset = offset;
  uint8_t p[4];
  kws_put_u32(p, audio_len);
  respond(req, p, sizeof p);
}

static void handle_infer_audio(const kws_frame_t *req) {
  if (req->length != 4) {
    fail(req, KWS_E_BAD_LENGTH, "infer audio: n_samples u32");
    return;
  }
  uint32_t n = kws_get_u32(req->payload);
  if (n == 0 || n != audio_len) {
    fail(req, KWS_E_NO_INPUT, "audio not (fully) uploaded");
    return;
  }
  uint32_t t[3];
  board_timer_restart();
  int rc = kws_frontend_compute(audio, (int)n, features);
  t[0] = (uint32_t)board_timer_read();
  if (rc != 0) {
    fail(req, KWS_E_BAD_ARGUMENT, "front end rejected the audio");
    return;
  }
  have_features = 1;
  board_timer_restart();
  rc = kws_model_invoke(features, scores);
  t[1] = (uint32_t)board_timer_read();
  if (rc != 0) {
    fail(req, KWS_E_MODEL, "model invoke failed");
    return;
  }
  board_timer_restart();
  volatile int cls = argmax(scores, KWS_MODEL_OUTPUT_SIZE); /* the post-processing step */
  (void)cls;
  t[2] = (uint32_t)board_timer_read();
  respond_scores(req, t, 3);
}

static void handle_bench(const kws_frame_t *req) {
  if (req->length != 8) {
    fail(req, KWS_E_BAD_LENGTH, "bench: n u32, warmup u32");
    return;
  }
  uint32_t n = kws_get_u32(req->payload), w = kws_get_u32(req->payload + 4);
  if (n == 0 || n > BENCH_MAX_N || w > BENCH_MAX_N) {
    fail(req, KWS_E_BAD_ARGUMENT, "bench: 1 <= n <= 100000, warmup <= 100000");
    return;
  }
  if (!have_features) {
    fail(req, KWS_E_NO_INPUT, "bench: send features or audio first");
    return;
  }
  for (uint32_t i = 0; i < w; i++) kws_model_invoke(features, scores);
  uint64_t total = 0, lo = UINT64_MAX, hi = 0;
  for (uint32_t i = 0; i < n; i++) {
    board_timer_restart();
    kws_model_invoke(features, scores);
    uint64_t t = board_timer_read();
    total += t;
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  uint8_t p[32];
  kws_put_u32(p, n);
  kws_put_u32(p + 4, w);
  kws_put_u64(p + 8, total);
  kws_put_u64(p + 16, lo);
  kws_put_u64(p + 24, hi);
  respond(req, p, sizeof p);
}

static void reset_state(void) {
  memset(features, 0, sizeof features);
  have_features = 0;
  audio_len = 0;
  last_chunk_offset = UINT32_MAX;
  kws_frontend_reset();
}

void kws_app_init(void) {
  reset_state();
#ifdef KWS_BACKEND_TFLM
  (void)kws_tflm_prepare(); /* a failure shows as MODEL errors on every inference */
#endif
}

int kws_app_step(void) {
  kws_frame_t req;
  int st = kws_read_frame(board_uart_read, rx, sizeof rx, &req);
  switch (st) {
    case KWS_OK:
      break;
    case KWS_ST_CLOSED:
      return -1;
    case KWS_ST_BAD_CRC:
      fail(&req, KWS_E_BAD_CRC, "bad CRC");
      return 0;
    case KWS_ST_BAD_LENGTH:
      fail(&req, KWS_E_BAD_LENGTH, "length exceeds the frame buffer");
      return 0;
    case KWS_ST_BAD_VERSION:
      fail(&req, KWS_E_BAD_VERSION, "unsupported protocol version");
      return 0;
    case KWS_ST_TIMEOUT: /* stalled mid-way (a lost byte, a client gone): dropped; the parser starts over */
      fail(&req, KWS_E_TIMEOUT, "frame stalled mid-way");
      return 0;
    default:
      return 0;
  }
  switch (req.type) {
    case KWS_T_HELLO: handle_hello(&req); break;
    case KWS_T_INFER_FEATURES: handle_infer_features(&req); break;
    case KWS_T_AUDIO_CHUNK: handle_audio_chunk(&req); break;
    case KWS_T_INFER_AUDIO: handle_infer_audio(&req); break;
    case KWS_T_BENCH: handle_bench(&req); break;
    case KWS_T_RESET:
      reset_state();
      respond(&req, NULL, 0);
      break;
    default: fail(&req, KWS_E_UNKNOWN_COMMAND, "unknown command"); break;
  }
  return 0;
}
