/* The micro_speech feature generator: window -> FFT -> mel filterbank -> noise reduction ->
 * PCAN gain control -> log scale, per 30 ms frame every 20 ms, in integer arithmetic only.
 *
 * A port of tensorflow/lite/experimental/microfrontend/lib/{window,fft,filterbank,
 * noise_reduction,pcan_gain_control,log_scale,frontend}.c with the micro_speech settings
 * fixed at table-generation time. Each stage keeps TF's integer types, shifts and rounding
 * on purpose: the point is bit-identity with the host front end that the model trained on.
 * State is static (one front end per firmware) and only the noise estimate carries across
 * frames; the compute functions reset it per clip, as one call of the TF op does.
 *
 * Copyright 2018 The TensorFlow Authors. All Rights Reserved.
 * Licensed under the Apache License, Version 2.0 (see NOTICE); modified for this project.
 */
#include "kws_frontend.h"

#include <stddef.h>
#include <string.h>

/* 4-byte loads/stores of int16 pairs; the builtin stays inline under -ffreestanding too. */
#if defined(__GNUC__)
#define KWS_MEMCPY __builtin_memcpy
#else
#define KWS_MEMCPY memcpy
#endif

#include "kws_fft.h"
#include "kws_frontend_tables.h"
#include "kws_log_lut.h"

#if KWS_FE_WINDOW_SIZE != KWS_FRONTEND_WINDOW || KWS_FE_WINDOW_STEP != KWS_FRONTEND_STEP || \
    KWS_FE_NUM_CHANNELS != KWS_FRONTEND_CHANNELS
#error "kws_frontend_tables.h does not match kws_frontend.h; rerun the table generator"
#endif

#define kFrontendWindowBits 12
#define kNoiseReductionBits 14
#define kPcanSnrBits 12
#define kPcanOutputBits 6
#define kUint16Max 0x0000FFFF

/* Each stage stays its own function (not inlined into kws_frontend_frame) so that an instruction
 * trace attributes the front end's time per stage (python -m harness perf); it costs a call each. */
#if defined(__GNUC__)
#define KWS_FE_STAGE __attribute__((noinline))
#else
#define KWS_FE_STAGE
#endif

/* ---- bits.h ---- */
static inline int msb32(uint32_t n) {
#if defined(__GNUC__)
  return n == 0 ? 0 : 32 - __builtin_clz(n);
#else
  int bits = 0;
  while (n) {
    ++bits;
    n >>= 1;
  }
  return bits;
#endif
}

static inline int msb64(uint64_t n) {
#if defined(__GNUC__)
  return n == 0 ? 0 : 64 - __builtin_clzll(n);
#else
  int bits = 0;
  while (n) {
    ++bits;
    n >>= 1;
  }
  return bits;
#endif
}

/* ---- state ---- */
/* The FFT reads the real samples as (even, odd) pairs, like kiss_fftr's cast; a union
 * makes that reinterpretation well-defined C. */
static union {
  int16_t samples[KWS_FFT_SIZE];
  kws_cpx_t pairs[KWS_FFT_CPX];
} s_fft_input;
/* TF reuses the FFT output buffer for the energies; so do we (saves 1 kB of RAM). */
static union {
  kws_cpx_t bins[KWS_FFT_BINS];
  int32_t energy[KWS_FFT_BINS];
} s_spectrum;
static uint64_t s_work[KWS_FE_NUM_CHANNELS + 1];
static uint32_t s_signal[KWS_FE_NUM_CHANNELS];
static uint32_t s_noise_estimate[KWS_FE_NUM_CHANNELS];

void kws_frontend_reset(void) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) s_noise_estimate[i] = 0;
  kws_fft_prepare(); /* the firmware resets at start-up: no timed clip pays for table set-up */
}

/* ---- window.c + fft.cc: window the frame; returns the shift that scales it into the FFT's range ---- */
#if defined(__ARM_FEATURE_SIMD32) && defined(__ARM_FEATURE_DSP) && !defined(KWS_FFT_PORTABLE)
#include <arm_acle.h>
/* Running lane-wise max / min of int16 pairs, updated in place (SSUB16 sets the GE flags that
 * SEL reads; one asm block so nothing can come between them). */
static inline void max16x2(uint32_t *m, uint32_t v) {
  uint32_t t;
  __asm__("ssub16 %1, %2, %0\n\tsel %0, %2, %0" : "+r"(*m), "=&r"(t) : "r"(v) : "cc");
}
static inline void min16x2(uint32_t *m, uint32_t v) {
  uint32_t t;
  __asm__("ssub16 %1, %2, %0\n\tsel %0, %0, %2" : "+r"(*m), "=&r"(t) : "r"(v) : "cc");
}
/* Two samples times two Q12 window values, >> 12, truncated to int16 each. */
static inline uint32_t window2(uint32_t x, uint32_t w) {
  uint32_t r;
  const int32_t lo = (int16_t)(x & 0xFFFFu) * (int16_t)(w & 0xFFFFu); /* SMULBB */
  const int32_t hi = (int16_t)(x >> 16) * (int16_t)(w >> 16);           /* SMULTT */
  __asm__("pkhtb %0, %1, %2, asr #12" : "=r"(r) : "r"((uint32_t)hi << 4), "r"(lo));
  return r;
}
#define KWS_FE_WINDOW_DSP 1
#endif

/* max |v| over the windowed samples, where v = -32768 counts as nothing: TF takes the abs in
 * int16, which wraps -32768 to itself, and then compares it as a negative number. */
static int16_t max_abs_exact(const int16_t *v) {
  int16_t max_abs = 0;
  int i;
  for (i = 0; i < KWS_FE_WINDOW_SIZE; ++i) {
    int16_t a = v[i];
    if (a < 0) a = (int16_t)-a;
    if (a > max_abs) max_abs = a;
  }
  return max_abs;
}

KWS_FE_STAGE static int apply_window(const int16_t *samples) {
  int16_t max_abs = 0;
  int i;
#if defined(KWS_FE_WINDOW_DSP)
  uint32_t vmax = 0, vmin = 0;
  for (i = 0; i < KWS_FE_WINDOW_SIZE; i += 4) { /* two pairs per turn */
    uint32_t x0, x1, w0, w1, v0, v1;
    KWS_MEMCPY(&x0, samples + i, 4);
    KWS_MEMCPY(&x1, samples + i + 2, 4);
    KWS_MEMCPY(&w0, kws_fe_window + i, 4);
    KWS_MEMCPY(&w1, kws_fe_window + i + 2, 4);
    v0 = window2(x0, w0);
    v1 = window2(x1, w1);
    KWS_MEMCPY(s_fft_input.samples + i, &v0, 4);
    KWS_MEMCPY(s_fft_input.samples + i + 2, &v1, 4);
    max16x2(&vmax, v0);
    min16x2(&vmin, v0);
    max16x2(&vmax, v1);
    min16x2(&vmin, v1);
  }
  {
    const int32_t hi_max = (int16_t)(vmax >> 16), lo_max = (int16_t)(vmax & 0xFFFFu);
    const int32_t hi_min = (int16_t)(vmin >> 16), lo_min = (int16_t)(vmin & 0xFFFFu);
    if (hi_min == -32768 || lo_min == -32768) {
      max_abs = max_abs_exact(s_fft_input.samples);
    } else {
      int32_t m = hi_max > lo_max ? hi_max : lo_max;
      if (-hi_min > m) m = -hi_min;
      if (-lo_min > m) m = -lo_min;
      max_abs = (int16_t)m;
    }
  }
#else
  for (i = 0; i < KWS_FE_WINDOW_SIZE; ++i) {
    s_fft_input.samples[i] = (int16_t)(((int32_t)samples[i] * kws_fe_window[i]) >> kFrontendWindowBits);
  }
  max_abs = max_abs_exact(s_fft_input.samples);
#endif
  /* samples[KWS_FE_WINDOW_SIZE ..] are the FFT's zero padding: static, never written */
  return 15 - msb32((uint32_t)max_abs);
}

/* The FFT (input shift fused in) and filterbank.c's squared magnitudes of the used bins. */
KWS_FE_STAGE static void fft_energy(int shift) {
  kws_fft_energy(s_fft_input.samples, shift, KWS_FE_FB_START_INDEX, KWS_FE_FB_END_INDEX, s_spectrum.energy);
}

/* ---- filterbank.c ---- */
KWS_FE_STAGE static void filterbank_accumulate(void) {
  uint64_t weight_accumulator = 0;
  uint64_t unweight_accumulator = 0;
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS + 1; ++i) {
    const int32_t *magnitudes = s_spectrum.energy + kws_fe_fb_channel_frequency_starts[i];
    const int16_t *weights = kws_fe_fb_weights + kws_fe_fb_channel_weight_starts[i];
    const int16_t *unweights = kws_fe_fb_unweights + kws_fe_fb_channel_weight_starts[i];
    const int width = kws_fe_fb_channel_widths[i];
    int j;
    for (j = 0; j < width; ++j) {
      weight_accumulator += (uint64_t)weights[j] * ((uint64_t)magnitudes[j]);
      unweight_accumulator += (uint64_t)unweights[j] * ((uint64_t)magnitudes[j]);
    }
    s_work[i] = weight_accumulator;
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

static uint32_t sqrt64(uint64_t num) {
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

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_DSP) && !defined(KWS_FFT_PORTABLE)
/* sqrt64() in ~30 instructions instead of one loop turn per result bit: the FPU's VSQRT gives a
 * first guess of floor(sqrt(num)) (good to a few units: the float keeps 24 bits), integer
 * multiplies then move it to the exact floor, and TF's rounding rule and caps follow. Integer
 * results only: the float never reaches the output, so the bits are sqrt64()'s (the QEMU test
 * checks the M4 build against the host, which runs sqrt64()). */
static uint32_t sqrt64_fast(uint64_t num) {
  const uint32_t hi = (uint32_t)(num >> 32), lo = (uint32_t)num;
  union {
    float f;
    uint32_t u;
  } x;
  uint32_t s;
  (void)sqrt64; /* the reference (host and portable builds) */
  if (num == 0) return 0;
  if (hi == 0) {
    x.f = (float)lo;
  } else {
    const int k = __builtin_clz(hi);
    x.f = (float)(k ? (hi << k) | (lo >> (32 - k)) : hi);
    x.u += (uint32_t)(32 - k) << 23; /* times 2^(32-k): exponent field */
  }
  __asm__("vsqrt.f32 %0, %1" : "=t"(x.f) : "t"(x.f));
  s = (uint32_t)x.f;
  while ((uint64_t)s * s > num) --s;
  while (s != 0xFFFFFFFFu && (uint64_t)(s + 1) * (s + 1) <= num) ++s;
  {
    const uint64_t rem = num - (uint64_t)s * s;
    const uint32_t cap = hi == 0 ? 0xFFFFu : 0xFFFFFFFFu; /* sqrt32's and sqrt64's limits */
    if (rem > s && s != cap) ++s;
  }
  return s;
}
#define KWS_SQRT64 sqrt64_fast
#else
#define KWS_SQRT64 sqrt64
#endif

KWS_FE_STAGE static void filterbank_sqrt(int scale_down_shift) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    s_signal[i] = KWS_SQRT64(s_work[i + 1]) >> scale_down_shift;
  }
}

/* ---- noise_reduction.c ---- */
static inline void nr_channel(const int i, const uint32_t smoothing) {
  const uint32_t one_minus_smoothing = (1 << kNoiseReductionBits) - smoothing;
  const uint32_t signal_scaled_up = s_signal[i] << KWS_FE_NR_SMOOTHING_BITS;
  uint32_t estimate = (uint32_t)((((uint64_t)signal_scaled_up * smoothing) +
                                  ((uint64_t)s_noise_estimate[i] * one_minus_smoothing)) >>
                                 kNoiseReductionBits);
  s_noise_estimate[i] = estimate;
  if (estimate > signal_scaled_up) estimate = signal_scaled_up;
  const uint32_t floor_value =
      (uint32_t)(((uint64_t)s_signal[i] * KWS_FE_NR_MIN_SIGNAL_REMAINING) >> kNoiseReductionBits);
  const uint32_t subtracted = (signal_scaled_up - estimate) >> KWS_FE_NR_SMOOTHING_BITS;
  s_signal[i] = subtracted > floor_value ? subtracted : floor_value;
}

#if KWS_FE_NUM_CHANNELS % 2
#error "noise_reduction() walks the channels in even/odd pairs"
#endif

KWS_FE_STAGE static void noise_reduction(void) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; i += 2) { /* even and odd channels: constant smoothing */
    nr_channel(i, KWS_FE_NR_EVEN_SMOOTHING);
    nr_channel(i + 1, KWS_FE_NR_ODD_SMOOTHING);
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

KWS_FE_STAGE static void pcan_gain_control(void) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    /* int16 gain widened to uint32 as in TF (the LUT values are positive). */
    const uint32_t gain = (uint32_t)wide_dynamic_function(s_noise_estimate[i], kws_fe_pcan_gain_lut);
    const uint32_t snr = (uint32_t)(((uint64_t)s_signal[i] * gain) >> KWS_FE_PCAN_SNR_SHIFT);
    s_signal[i] = pcan_shrink(snr);
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

KWS_FE_STAGE static void log_scale(uint16_t *out) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    uint32_t value = s_signal[i];
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
void kws_frontend_frame(const int16_t *window, uint16_t *values) {
  const int shift = apply_window(window);
  fft_energy(shift);
  filterbank_accumulate();
  filterbank_sqrt(shift);
  noise_reduction();
  pcan_gain_control();
  log_scale(values);
}

int8_t kws_frontend_quantize(uint16_t value) {
  int32_t q = (((int32_t)value * 256) + 333) / 666 - 128;
  if (q < -128) q = -128;
  if (q > 127) q = 127;
  return (int8_t)q;
}

static int check(const void *audio, int n_samples, const void *out) {
  if (audio == NULL || out == NULL) return KWS_FRONTEND_ERR_NULL;
  if (n_samples != KWS_FRONTEND_SAMPLES) return KWS_FRONTEND_ERR_LENGTH;
  return KWS_FRONTEND_OK;
}

int kws_frontend_compute_u16(const int16_t *audio, int n_samples, uint16_t *values) {
  const int rc = check(audio, n_samples, values);
  int f;
  if (rc != KWS_FRONTEND_OK) return rc;
  kws_frontend_reset();
  for (f = 0; f < KWS_FRONTEND_FRAMES; ++f) {
    kws_frontend_frame(audio + f * KWS_FRONTEND_STEP, values + f * KWS_FRONTEND_CHANNELS);
  }
  return KWS_FRONTEND_OK;
}

int kws_frontend_compute(const int16_t *audio, int n_samples, int8_t *features) {
  const int rc = check(audio, n_samples, features);
  uint16_t frame[KWS_FRONTEND_CHANNELS];
  int f, c;
  if (rc != KWS_FRONTEND_OK) return rc;
  kws_frontend_reset();
  for (f = 0; f < KWS_FRONTEND_FRAMES; ++f) {
    kws_frontend_frame(audio + f * KWS_FRONTEND_STEP, frame);
    for (c = 0; c < KWS_FRONTEND_CHANNELS; ++c) {
      features[f * KWS_FRONTEND_CHANNELS + c] = kws_frontend_quantize(frame[c]);
    }
  }
  return KWS_FRONTEND_OK;
}
