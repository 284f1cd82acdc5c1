/* kws_frontend: the micro_speech audio front end (TF audio_microfrontend) in plain C99.
 *
 * Turns 1 s of 16-bit 16 kHz audio into the 49x40 features that TinyConv reads, bit for bit
 * the same as TensorFlow's audio_microfrontend op with micro_speech settings (window 30 ms,
 * step 20 ms, 40 channels, 125..7500 Hz, noise reduction 0.025/0.06/0.05, PCAN 0.95/80/21,
 * log scale shift 6). Fixed point only: no malloc, no float arithmetic in any result, no libm at
 * run time (the M4 build takes VSQRT's guess as the start of an exact integer square root); the tables
 * that TF computes with libm at init are precomputed in kws_frontend_tables.c.
 *
 * The pipeline is a port of tensorflow/lite/experimental/microfrontend/lib/ (Apache-2.0,
 * Copyright 2018 The TensorFlow Authors) and of KISS FFT 131.1.0 in FIXED_POINT=16 mode
 * (BSD-3-Clause, Copyright (c) 2003-2010 Mark Borgerding); see NOTICE in this folder.
 */
#ifndef KWS_FRONTEND_H_
#define KWS_FRONTEND_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FRONTEND_SAMPLE_RATE 16000
#define KWS_FRONTEND_SAMPLES 16000      /* one clip: 1 s */
#define KWS_FRONTEND_WINDOW 480         /* 30 ms */
#define KWS_FRONTEND_STEP 320           /* 20 ms */
#define KWS_FRONTEND_FRAMES 49          /* (16000 - 480) / 320 + 1 */
#define KWS_FRONTEND_CHANNELS 40
#define KWS_FRONTEND_FEATURES (KWS_FRONTEND_FRAMES * KWS_FRONTEND_CHANNELS)

/* Return codes of the compute functions. */
#define KWS_FRONTEND_OK 0
#define KWS_FRONTEND_ERR_NULL (-1)      /* a NULL pointer */
#define KWS_FRONTEND_ERR_LENGTH (-2)    /* n_samples != KWS_FRONTEND_SAMPLES */

/* Clears the streaming state (noise estimates). The compute functions call it themselves, so
 * every clip starts from a fresh state exactly like one call of the TF op. */
void kws_frontend_reset(void);

/* 1 s of audio -> 49x40 int8 features (row-major, frame by frame), quantized with the
 * micro_speech rule ((v * 256 + 333) / 666) - 128 clamped to [-128, 127]. */
int kws_frontend_compute(const int16_t *audio, int n_samples, int8_t *features);

/* Same, but the raw uint16 front-end values (what the TF op returns with out_type uint16). */
int kws_frontend_compute_u16(const int16_t *audio, int n_samples, uint16_t *values);

/* One frame: 480 samples -> 40 uint16 values, carrying the noise estimate from the previous
 * call (streaming use; call kws_frontend_reset() before the first frame of a clip). */
void kws_frontend_frame(const int16_t *window, uint16_t *values);

/* The micro_speech quantization of one front-end value. */
int8_t kws_frontend_quantize(uint16_t value);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FRONTEND_H_ */
