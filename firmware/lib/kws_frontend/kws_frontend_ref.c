/* The reference front end: TF's microfrontend stages written the way TF writes them (one plain
 * loop per stage, kissfft's own recursion through kws_fft_real), with no fast path.
 *
 * WHY it is kept: kws_frontend.c reorganises every stage for the Cortex-M4 (packed SIMD, fused
 * steps, unrolled filterbank, a float-seeded square root); each of those rewrites is only safe if
 * it gives the same bits on every input. This file is what they are held against, frame by frame
 * on random and extreme audio (tests/test_frontend_fast.py on the host, and on the emulated M4 in
 * tests/test_frontend_c_qemu.py), and it is itself held against the TF op by the host's clips
 * (tests/test_frontend_c.py). The firmware never calls it; --gc-sections drops it from the ELF.
 *
 * Copyright 2018 The TensorFlow Authors. All Rights Reserved.
 * Licensed under the Apache License, Version 2.0 (see NOTICE); modified for this project.
 */
#include "kws_frontend_ref.h"

#include <stddef.h>

#include "kws_fft.h"
#include "kws_frontend.h"
#include "kws_frontend_tables.h"
#include "kws_log_lut.h"

#define kFrontendWindowBits 12
#define kNoiseReductionBits 14
#define kPcanSnrBits 12
#define kPcanOutputBits 6
#define kUint16Max 0x0000FFFF

static int msb32(uint32_t n) {
  int bits = 0;
  while (n) {
    ++bits;
    n >>= 1;
  }
  return bits;
}

static int msb64(uint64_t n) {
  int bits = 0;
  while (n) {
    ++bits;
    n >>= 1;
  }
  return bits;
}

/* ---- window.c + fft.cc ---- */
static int window(const int16_t *samples, int16_t *out) {
  int16_t max_abs = 0;
  int i;
  for (i = 0; i < KWS_FE_WINDOW_SIZE; ++i) {
    int16_t v = (int16_t)(((int32_t)samples[i] * kws_fe_window[i]) >> kFrontendWindowBits);
    out[i] = v;
    if (v < 0) v = (int16_t)-v; /* -32768 stays negative and so never counts */
    if (v > max_abs) max_abs = v;
  }
  return 15 - msb32((uint32_t)max_abs);
}

void kws_fe_ref_spectrum(const int16_t *window_samples, int shift, int32_t *energy) {
  static union {
    int16_t samples[KWS_FFT_SIZE];
    kws_cpx_t pairs[KWS_FFT_CPX];
  } in;
  static kws_cpx_t bins[KWS_FFT_BINS];
  int i;
  for (i = 0; i < KWS_FE_WINDOW_SIZE; ++i) in.samples[i] = (int16_t)(window_samples[i] * (1 << shift));
  for (; i < KWS_FFT_SIZE; ++i) in.samples[i] = 0;
  kws_fft_real(in.pairs, bins);
  for (i = KWS_FE_FB_START_INDEX; i < KWS_FE_FB_END_INDEX; ++i) {
    const int32_t re = bins[i].r, im = bins[i].i;
    energy[i] = (int32_t)((uint32_t)(re * re) + (uint32_t)(im * im));
  }
}

/* ---- filterbank.c ---- */
void kws_fe_ref_filterbank(const int32_t *energy, uint64_t *work) {
  uint64_t weight_accumulator = 0;
  uint64_t unweight_accumulator = 0;
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS + 1; ++i) {
    const int32_t *magnitudes = energy + kws_fe_fb_channel_frequency_starts[i];
    const int16_t *weights = kws_fe_fb_weights + kws_fe_fb_channel_weight_starts[i];
    const int16_t *unweights = kws_fe_fb_unweights + kws_fe_fb_channel_weight_starts[i];
    const int width = kws_fe_fb_channel_widths[i];
    int j;
    for (j = 0; j < width; ++j) {
      weight_accumulator += (uint64_t)weights[j] * ((uint64_t)(uint32_t)magnitudes[j]);
      unweight_accumulator += (uint64_t)unweights[j] * ((uint64_t)(uint32_t)magnitudes[j]);
    }
    work[i] = weight_accumulator;
    weight_accumulator = unweight_accumulator;
    unweight_accumulator = 0;
  }
}

static uint16_t sqrt32(uint32_t num) {
  if (num == 0) return 0;
  uint32_t res = 0;
  int max_bit_number = 32 - msb32(num);
  max_bit_number |= 1;
  uint32_t bit = 1U << (31 - max_bit_number);
  int iterations = (31 - max_bit_number) / 2 + 1;
  while (iterations--) {
    if (num >= res + bit) {
      num -= res + bit;
      res = (res >> 1U) + bit;
    } else {
      res >>= 1U;
    }
    bit >>= 2U;
  }
  if (num > res && res != 0xFFFF) ++res;
  return (uint16_t)res;
}

uint32_t kws_fe_ref_sqrt64(uint64_t num) {
  /* TF's shortcut (and its slight off-by-one near 2^32) is part of the contract. */
  if ((num >> 32) == 0) return sqrt32((uint32_t)num);
  uint64_t res = 0;
  int max_bit_number = 64 - msb64(num);
  max_bit_number |= 1;
  uint64_t bit = 1ULL << (63 - max_bit_number);
  int iterations = (63 - max_bit_number) / 2 + 1;
  while (iterations--) {
    if (num >= res + bit) {
      num -= res + bit;
      res = (res >> 1U) + bit;
    } else {
      res >>= 1U;
    }
    bit >>= 2U;
  }
  if (num > res && res != 0xFFFFFFFFLL) ++res;
  return (uint32_t)res;
}

/* ---- noise_reduction.c ---- */
static void noise_reduction(uint32_t *signal, uint32_t *noise_estimate) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    const uint32_t smoothing = (i & 1) == 0 ? KWS_FE_NR_EVEN_SMOOTHING : KWS_FE_NR_ODD_SMOOTHING;
    const uint32_t one_minus_smoothing = (1 << kNoiseReductionBits) - smoothing;
    const uint32_t signal_scaled_up = signal[i] << KWS_FE_NR_SMOOTHING_BITS;
    uint32_t estimate = (uint32_t)((((uint64_t)signal_scaled_up * smoothing) +
                                    ((uint64_t)noise_estimate[i] * one_minus_smoothing)) >>
                                   kNoiseReductionBits);
    noise_estimate[i] = estimate;
    if (estimate > signal_scaled_up) estimate = signal_scaled_up;
    const uint32_t floor_value =
        (uint32_t)(((uint64_t)signal[i] * KWS_FE_NR_MIN_SIGNAL_REMAINING) >> kNoiseReductionBits);
    const uint32_t subtracted = (signal_scaled_up - estimate) >> KWS_FE_NR_SMOOTHING_BITS;
    signal[i] = subtracted > floor_value ? subtracted : floor_value;
  }
}

/* ---- pcan_gain_control.c ---- */
static int16_t wide_dynamic_function(const uint32_t x, const int16_t *lut) {
  if (x <= 2) return lut[x];
  const int16_t interval = (int16_t)msb32(x);
  lut += 4 * interval - 6;
  const int16_t frac =
      (int16_t)(((interval < 11) ? (x << (11 - interval)) : (x >> (interval - 11))) & 0x3FF);
  int32_t result = ((int32_t)lut[2] * frac) >> 5;
  result += (int32_t)((uint32_t)lut[1] << 5);
  result *= frac;
  result = (result + (1 << 14)) >> 15;
  result += lut[0];
  return (int16_t)result;
}

static uint32_t pcan_shrink(const uint32_t x) {
  if (x < (2 << kPcanSnrBits)) {
    return (x * x) >> (2 + 2 * kPcanSnrBits - kPcanOutputBits);
  }
  return (x >> (kPcanSnrBits - kPcanOutputBits)) - (1 << kPcanOutputBits);
}

static void pcan_gain_control(uint32_t *signal, const uint32_t *noise_estimate) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    const uint32_t gain = (uint32_t)wide_dynamic_function(noise_estimate[i], kws_fe_pcan_gain_lut);
    const uint32_t snr = (uint32_t)(((uint64_t)signal[i] * gain) >> KWS_FE_PCAN_SNR_SHIFT);
    signal[i] = pcan_shrink(snr);
  }
}

/* ---- log_scale.c ---- */
static uint32_t log2_fraction_part(const uint32_t x, const uint32_t log2x) {
  int32_t frac = (int32_t)(x - (1LL << log2x));
  if (log2x < KWS_FE_LOG_SCALE_LOG2) {
    frac <<= KWS_FE_LOG_SCALE_LOG2 - log2x;
  } else {
    frac >>= log2x - KWS_FE_LOG_SCALE_LOG2;
  }
  const uint32_t base_seg = (uint32_t)(frac >> (KWS_FE_LOG_SCALE_LOG2 - KWS_FE_LOG_SEGMENTS_LOG2));
  const uint32_t seg_unit = (((uint32_t)1) << KWS_FE_LOG_SCALE_LOG2) >> KWS_FE_LOG_SEGMENTS_LOG2;
  const int32_t c0 = kws_fe_log_lut[base_seg];
  const int32_t c1 = kws_fe_log_lut[base_seg + 1];
  const int32_t seg_base = (int32_t)(seg_unit * base_seg);
  const int32_t rel_pos = ((c1 - c0) * (frac - seg_base)) >> KWS_FE_LOG_SCALE_LOG2;
  return (uint32_t)(frac + c0 + rel_pos);
}

static uint32_t log_scaled(const uint32_t x, const uint32_t scale_shift) {
  const uint32_t integer = (uint32_t)msb32(x) - 1;
  const uint32_t fraction = log2_fraction_part(x, integer);
  const uint32_t log2 = (integer << KWS_FE_LOG_SCALE_LOG2) + fraction;
  const uint32_t round = KWS_FE_LOG_SCALE / 2;
  const uint32_t loge =
      (uint32_t)((((uint64_t)KWS_FE_LOG_COEFF) * log2 + round) >> KWS_FE_LOG_SCALE_LOG2);
  return ((loge << scale_shift) + round) >> KWS_FE_LOG_SCALE_LOG2;
}

static void log_scale(const uint32_t *signal, uint16_t *out) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    uint32_t value = signal[i];
#if KWS_FE_LOG_CORRECTION_BITS < 0
    value >>= -KWS_FE_LOG_CORRECTION_BITS;
#else
    value <<= KWS_FE_LOG_CORRECTION_BITS;
#endif
    value = value > 1 ? log_scaled(value, KWS_FE_LOG_SCALE_SHIFT) : 0;
    out[i] = (uint16_t)(value < kUint16Max ? value : kUint16Max);
  }
}

/* ---- frontend.c ---- */
void kws_fe_ref_frame(const int16_t *samples, uint16_t *values, uint32_t *noise_estimate) {
  int16_t windowed[KWS_FE_WINDOW_SIZE];
  int32_t energy[KWS_FFT_BINS];
  uint64_t work[KWS_FE_NUM_CHANNELS + 1];
  uint32_t signal[KWS_FE_NUM_CHANNELS];
  int i;
  const int shift = window(samples, windowed);
  kws_fe_ref_spectrum(windowed, shift, energy);
  kws_fe_ref_filterbank(energy, work);
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) signal[i] = kws_fe_ref_sqrt64(work[i + 1]) >> shift;
  noise_reduction(signal, noise_estimate);
  pcan_gain_control(signal, noise_estimate);
  log_scale(signal, values);
}

int kws_fe_ref_compute_u16(const int16_t *audio, int n_samples, uint16_t *values) {
  uint32_t noise_estimate[KWS_FE_NUM_CHANNELS];
  int f;
  for (f = 0; f < KWS_FE_NUM_CHANNELS; ++f) noise_estimate[f] = 0;
  if (audio == NULL || values == NULL) return KWS_FRONTEND_ERR_NULL;
  if (n_samples != KWS_FRONTEND_SAMPLES) return KWS_FRONTEND_ERR_LENGTH;
  for (f = 0; f < KWS_FRONTEND_FRAMES; ++f) {
    kws_fe_ref_frame(audio + f * KWS_FRONTEND_STEP, values + f * KWS_FRONTEND_CHANNELS, noise_estimate);
  }
  return KWS_FRONTEND_OK;
}

int8_t kws_fe_ref_quantize(uint16_t value) {
  int32_t q = (((int32_t)value * 256) + 333) / 666 - 128;
  if (q < -128) q = -128;
  if (q > 127) q = 127;
  return (int8_t)q;
}
