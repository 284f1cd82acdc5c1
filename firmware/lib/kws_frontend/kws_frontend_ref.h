/* The reference front end (kws_frontend_ref.c): TF's stages as TF writes them, kept to check the
 * fast paths of kws_frontend.c / kws_fft.c against, bit for bit. Not used by the firmware.
 *
 * Copyright 2018 The TensorFlow Authors. All Rights Reserved.
 * Licensed under the Apache License, Version 2.0 (see NOTICE); modified for this project.
 */
#ifndef KWS_FRONTEND_REF_H_
#define KWS_FRONTEND_REF_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One frame (480 samples) -> 40 values; noise_estimate (40 words, zero at the start of a clip)
 * carries across frames, as kws_frontend_frame's static state does. */
void kws_fe_ref_frame(const int16_t *samples, uint16_t *values, uint32_t *noise_estimate);

/* kws_frontend_compute_u16's reference: 1 s of audio -> 49x40 uint16, from a fresh state. */
int kws_fe_ref_compute_u16(const int16_t *audio, int n_samples, uint16_t *values);

/* Stages, for checks of one fast routine at a time: the windowed frame shifted left by `shift`
 * (int16 wrap), kiss_fftr, squared magnitudes of bins [KWS_FE_FB_START_INDEX, KWS_FE_FB_END_INDEX);
 * the filterbank's 41 sums; TF's integer square root; the int8 quantization. */
void kws_fe_ref_spectrum(const int16_t *window_samples, int shift, int32_t *energy);
void kws_fe_ref_filterbank(const int32_t *energy, uint64_t *work);
uint32_t kws_fe_ref_sqrt64(uint64_t num);
int8_t kws_fe_ref_quantize(uint16_t value);

/* The fast routines (kws_frontend.c) that the stage checks hold against the ones above. */
void kws_fe_filterbank(const int32_t *energy, uint64_t *work);
uint32_t kws_fe_sqrt64(uint64_t num);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FRONTEND_REF_H_ */
