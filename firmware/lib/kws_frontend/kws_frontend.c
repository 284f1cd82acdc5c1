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
#include "kws_frontend_ref.h"
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
 * makes that reinterpretation well-defined C (and gives the window's word stores). */
static union {
  int16_t samples[KWS_FFT_SIZE];
  kws_cpx_t pairs[KWS_FFT_CPX];
  uint32_t words[KWS_FFT_CPX];
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

/* ---- the few DSP instructions the stages below use: the Cortex-M4's, or the same arithmetic
 * in portable C (host build), so the host runs the very algorithm the M4 runs ---- */
#if defined(__ARM_FEATURE_SIMD32) && defined(__ARM_FEATURE_DSP) && !defined(KWS_FFT_PORTABLE)
#include <arm_acle.h>
#define KWS_FE_DSP 1
/* (w * x.bottom) >> 16 and (w * x.top) >> 16, w a 32-bit word. */
static inline int32_t smulwb(int32_t w, uint32_t x) {
  int32_t r;
  __asm__("smulwb %0, %1, %2" : "=r"(r) : "r"(w), "r"(x));
  return r;
}
static inline int32_t smulwt(int32_t w, uint32_t x) {
  int32_t r;
  __asm__("smulwt %0, %1, %2" : "=r"(r) : "r"(w), "r"(x));
  return r;
}
/* |v| of each int16 lane, -32768 staying 0x8000: SSUB16 0 - v sets GE where v <= 0, SEL picks. */
static inline uint32_t abs16x2(uint32_t v) {
  uint32_t n, r;
  __asm__("ssub16 %1, %3, %2\n\tsel %0, %1, %2" : "=r"(r), "=&r"(n) : "r"(v), "r"(0) : "cc");
  return r;
}
/* Bottom half of lo, bottom half of hi in the top half (PKHBT ..., LSL #16). */
static inline uint32_t pack_lo_hi(int32_t lo, int32_t hi) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
#else
static inline int32_t smulwb(int32_t w, uint32_t x) {
  return (int32_t)(((int64_t)w * (int16_t)(uint16_t)(x & 0xFFFFu)) >> 16);
}
static inline int32_t smulwt(int32_t w, uint32_t x) {
  return (int32_t)(((int64_t)w * (int16_t)(uint16_t)(x >> 16)) >> 16);
}
static inline uint32_t abs16_lane(uint32_t v) {
  const int32_t x = (int16_t)(uint16_t)v;
  return (uint32_t)(x <= 0 ? -x : x) & 0xFFFFu;
}
static inline uint32_t abs16x2(uint32_t v) { return abs16_lane(v & 0xFFFFu) | (abs16_lane(v >> 16) << 16); }
static inline uint32_t pack_lo_hi(int32_t lo, int32_t hi) {
  return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}
#endif

static inline uint32_t load32(const int16_t *p) {
  uint32_t v;
  KWS_MEMCPY(&v, p, 4); /* the caller's samples need not be word-aligned: LDR allows that */
  return v;
}

/* ---- window.c + fft.cc: window the frame; returns the shift that scales it into the FFT's range ---- */
/* Two samples per word: SMULWB/SMULWT by the Q16 window give TF's (x * w) >> 12 exactly (the
 * product is exact in 48 bits and >> 16 floors it), PKHBT packs the two int16 results as TF's
 * int16 stores truncate them. TF's max |v| takes the abs in int16, where -32768 stays negative
 * and so never counts; only the bit length of the maximum matters (shift = 15 - msb), and the
 * bit length of a maximum is that of the OR of all values. |v| per lane (SSUB16 + SEL) maps
 * -32768 to 0x8000 and every other value below 0x8000, so the OR's bit 15 is -32768's alone and
 * is masked off. */
KWS_FE_STAGE static int apply_window(const int16_t *samples) {
  const int32_t *w = kws_fe_window_q16;
  uint32_t *out = s_fft_input.words;
  uint32_t *const end = out + KWS_FE_WINDOW_SIZE / 2;
  uint32_t acc = 0;
#if defined(KWS_FE_DSP)
  /* The same four samples per step as the C below, in one asm block: LDM takes the four window
   * words in one instruction (it needs ascending registers, hence the fixed ones), STRD and the
   * loads post-increment their pointers. 16 instructions per four samples. */
  register uint32_t w0 __asm__("r4");
  register uint32_t w1 __asm__("r5");
  register uint32_t w2 __asm__("r6");
  register uint32_t w3 __asm__("r7");
  uint32_t x0, x1, t0, t1;
#define KWS_WINDOW_STEP                                                                      \
  __asm__("ldm %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"                                     \
          "ldr %[x1], [%[x], #4]\n\t"                                                       \
          "ldr %[x0], [%[x]], #8\n\t"                                                       \
          "smulwb %[t0], %[w0], %[x0]\n\t"                                                  \
          "smulwt %[t1], %[w1], %[x0]\n\t"                                                  \
          "pkhbt %[x0], %[t0], %[t1], lsl #16\n\t"                                          \
          "smulwb %[t0], %[w2], %[x1]\n\t"                                                  \
          "smulwt %[t1], %[w3], %[x1]\n\t"                                                  \
          "pkhbt %[x1], %[t0], %[t1], lsl #16\n\t"                                          \
          "strd %[x0], %[x1], [%[o]], #8\n\t"                                               \
          "ssub16 %[t0], %[zero], %[x0]\n\t"                                                \
          "sel %[t0], %[t0], %[x0]\n\t"                                                     \
          "ssub16 %[t1], %[zero], %[x1]\n\t"                                                \
          "sel %[t1], %[t1], %[x1]\n\t"                                                     \
          "orr %[acc], %[acc], %[t0]\n\t"                                                   \
          "orr %[acc], %[acc], %[t1]"                                                        \
          : [w] "+r"(w), [x] "+r"(samples), [o] "+r"(out), [acc] "+r"(acc), [w0] "=r"(w0),   \
            [w1] "=r"(w1), [w2] "=r"(w2), [w3] "=r"(w3), [x0] "=&r"(x0), [x1] "=&r"(x1),     \
            [t0] "=&r"(t0), [t1] "=&r"(t1)                                                   \
          : [zero] "r"(0)                                                                    \
          : "cc", "memory")
  do { /* eight samples per turn */
    KWS_WINDOW_STEP;
    KWS_WINDOW_STEP;
  } while (out != end);
#undef KWS_WINDOW_STEP
#else
  do { /* two words (four samples) per turn */
    const uint32_t x0 = load32(samples), x1 = load32(samples + 2);
    const uint32_t v0 = pack_lo_hi(smulwb(w[0], x0), smulwt(w[1], x0));
    const uint32_t v1 = pack_lo_hi(smulwb(w[2], x1), smulwt(w[3], x1));
    out[0] = v0;
    out[1] = v1;
    acc |= abs16x2(v0) | abs16x2(v1);
    samples += 4;
    w += 4;
    out += 2;
  } while (out != end);
#endif
  /* samples[KWS_FE_WINDOW_SIZE ..] are the FFT's zero padding: static, never written */
  return 15 - msb32((acc | (acc >> 16)) & 0x7FFFu);
}

#if KWS_FE_WINDOW_SIZE % 8
#error "apply_window() takes eight samples per turn"
#endif

/* The FFT (input shift fused in) and filterbank.c's squared magnitudes of the used bins. */
KWS_FE_STAGE static void fft_energy(int shift) {
  kws_fft_energy(s_fft_input.samples, shift, KWS_FE_FB_START_INDEX, KWS_FE_FB_END_INDEX, s_spectrum.energy);
}

/* ---- filterbank.c ---- */
/* TF's loop over the 4-aligned weight layout, unrolled by the generated term list: one
 * multiply-accumulate per nonzero weight with the weight as an immediate, no index loads, no
 * zero padding. The sums are the same uint64 sums, in another order of exact additions. */
#if defined(KWS_FE_DSP)
/* One LDR, MOVW and UMLAL per weight, in asm statements that keep their order (volatile; they read
 * the energies, hence the memory clobber): left to itself
 * GCC interleaves the 41 independent channel sums and spills most of them to the stack. Two
 * 64-bit accumulators A and B take turns: A sums channel ch's weights while B sums its
 * unweights (= channel ch+1's first part); at END(ch) A is stored and cleared and the roles swap. */
#define KWS_FB_MAC2(bin, weight, unweight, WL, WH, UL, UH)                                          \
  __asm__ volatile("ldr %[m], [%[e], %[off]]\n\t"                                                   \
                   "movw %[t], %[w]\n\t"                                                            \
                   "umlal %[wl], %[wh], %[m], %[t]\n\t"                                             \
                   "movw %[t], %[u]\n\t"                                                            \
                   "umlal %[ul], %[uh], %[m], %[t]"                                                 \
                   : [wl] "+r"(WL), [wh] "+r"(WH), [ul] "+r"(UL), [uh] "+r"(UH), [m] "=&r"(m_),      \
                     [t] "=&r"(t_)                                                                  \
                   : [e] "r"(e), [off] "I"(4 * (bin)), [w] "i"(weight), [u] "i"(unweight)          \
                   : "memory")
#define KWS_FB_MAC1(bin, weight, AL, AH)                                                            \
  __asm__ volatile("ldr %[m], [%[e], %[off]]\n\t"                                                   \
                   "movw %[t], %[w]\n\t"                                                            \
                   "umlal %[al], %[ah], %[m], %[t]"                                                 \
                   : [al] "+r"(AL), [ah] "+r"(AH), [m] "=&r"(m_), [t] "=&r"(t_)                     \
                   : [e] "r"(e), [off] "I"(4 * (bin)), [w] "i"(weight)                             \
                   : "memory")
#define KWS_FB_TERM_(bin, weight, unweight, WL, WH, UL, UH)                          \
  if ((weight) != 0 && (unweight) != 0) {                                            \
    KWS_FB_MAC2(bin, weight, unweight, WL, WH, UL, UH);                              \
  } else if ((weight) != 0) {                                                        \
    KWS_FB_MAC1(bin, (weight) + 0 * (unweight), WL, WH);                             \
  } else {                                                                           \
    KWS_FB_MAC1(bin, (unweight) + 0 * (weight), UL, UH);                             \
  }
#define KWS_FB_TERM(channel, bin, weight, unweight)                   \
  if ((channel) & 1) {                                                \
    KWS_FB_TERM_(bin, weight, unweight, bl, bh, al, ah)               \
  } else {                                                            \
    KWS_FB_TERM_(bin, weight, unweight, al, ah, bl, bh)               \
  }
#define KWS_FB_END(channel)                                                               \
  if ((channel) & 1) {                                                                    \
    work32[2 * (channel)] = bl;                                                           \
    work32[2 * (channel) + 1] = bh;                                                       \
    bl = bh = 0;                                                                          \
  } else {                                                                                \
    work32[2 * (channel)] = al;                                                           \
    work32[2 * (channel) + 1] = ah;                                                       \
    al = ah = 0;                                                                          \
  }
KWS_FE_STAGE static void filterbank_accumulate(const int32_t *const e, uint64_t *const work) {
  uint32_t *const work32 = (uint32_t *)work; /* little-endian: low word first */
  uint32_t al = 0, ah = 0, bl = 0, bh = 0, m_, t_;
  KWS_FE_FB_TERMS(KWS_FB_TERM, KWS_FB_END)
  (void)m_;
  (void)t_;
}
#undef KWS_FB_MAC2
#undef KWS_FB_MAC1
#undef KWS_FB_TERM_
#else
#define KWS_FB_TERM(channel, bin, weight, unweight)         \
  {                                                         \
    const uint32_t m_ = (uint32_t)e[bin];                   \
    acc_w += (uint64_t)m_ * (uint32_t)(weight);             \
    acc_u += (uint64_t)m_ * (uint32_t)(unweight);           \
  }
#define KWS_FB_END(channel) \
  work[channel] = acc_w;    \
  acc_w = acc_u;            \
  acc_u = 0;
KWS_FE_STAGE static void filterbank_accumulate(const int32_t *const e, uint64_t *const work) {
  uint64_t acc_w = 0, acc_u = 0;
  KWS_FE_FB_TERMS(KWS_FB_TERM, KWS_FB_END)
  (void)acc_w;
}
#endif
#undef KWS_FB_TERM
#undef KWS_FB_END

void kws_fe_filterbank(const int32_t *energy, uint64_t *work) { filterbank_accumulate(energy, work); }

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
/* sqrt64() in ~20 instructions instead of one loop turn per result bit, for num < 2^48 (every
 * filterbank sum: at most 32 bins of 2^31 times 2^12; larger ones take sqrt64()). The FPU's VSQRT
 * of the float nearest num gives floor(sqrt(num)) to within a unit or two (24-bit mantissa);
 * the remainder num - s^2, exact in 32-bit arithmetic because it is far below 2^31, moves s to
 * the exact floor, and TF's rounding rule follows: up when the remainder exceeds s, except at
 * sqrt32's cap 0xFFFF (s = 0xFFFF implies num < 2^32; sqrt64's cap cannot be reached below
 * 2^48). Integer results only: the float never reaches the output. */
static inline uint32_t sqrt64_fast(uint64_t num) {
  const uint32_t hi = (uint32_t)(num >> 32), lo = (uint32_t)num;
  float f;
  uint32_t s;
  int32_t r;
  if (hi >= 0x10000u) return sqrt64(num);
  f = (float)lo;
  /* f += hi * 2^32 in one fused multiply-add (C99 mode keeps GCC from contracting it itself) */
  __asm__("vfma.f32 %0, %1, %2" : "+t"(f) : "t"((float)hi), "t"(4294967296.0f));
  __asm__("vsqrt.f32 %0, %1" : "=t"(f) : "t"(f));
  s = (uint32_t)f;
  r = (int32_t)(lo - s * s); /* num - s*s modulo 2^32, and |num - s*s| < 2^31 */
  while (r < 0) {
    --s;
    r += (int32_t)(2 * s + 1);
  }
  while (r > (int32_t)(2 * s)) {
    ++s;
    r -= (int32_t)(2 * s - 1);
  }
  if (r > (int32_t)s && s != 0xFFFFu) ++s;
  return s;
}
#define KWS_SQRT64 sqrt64_fast
#else
#define KWS_SQRT64 sqrt64
#endif

uint32_t kws_fe_sqrt64(uint64_t num) { return KWS_SQRT64(num); }

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
/* TF's WideDynamicFunction. The 10 bits below x's leading one are TF's frac whether TF shifts x
 * left or right to get them, so one normalising shift (x << clz(x)) replaces the two branches. */
static inline int32_t pcan_gain(const uint32_t x) {
  if (x <= 2) return kws_fe_pcan_gain_lut[x];
  {
    const int z = __builtin_clz(x); /* msb32(x) = 32 - z */
    const int16_t *lut = kws_fe_pcan_gain_lut + (4 * 32 - 6) - 4 * z; /* TF: + 4 * msb - 6 */
    const int32_t frac = (int32_t)(((x << z) >> 21) & 0x3FF);
    int32_t result = ((int32_t)lut[2] * frac) >> 5;
    result += (int32_t)((uint32_t)lut[1] << 5);
    result *= frac;
    result = (result + (1 << 14)) >> 15;
    result += lut[0];
    return (int16_t)result;
  }
}

KWS_FE_STAGE static void pcan_gain_control(void) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    /* int16 gain widened to uint32 as in TF (the LUT values are positive). */
    const uint32_t gain = (uint32_t)pcan_gain(s_noise_estimate[i]);
    const uint32_t snr = (uint32_t)(((uint64_t)s_signal[i] * gain) >> KWS_FE_PCAN_SNR_SHIFT);
    s_signal[i] = snr < (2 << kPcanSnrBits) ? (snr * snr) >> (2 + 2 * kPcanSnrBits - kPcanOutputBits)
                                            : (snr >> (kPcanSnrBits - kPcanOutputBits)) - (1 << kPcanOutputBits);
  }
}

/* ---- log_scale.c ---- */
/* TF's Log(): log2 in Q16 from the leading-one position and a 128-segment correction LUT, then
 * times ln 2. Here the 16 bits below the leading one come from one normalising shift (TF shifts
 * left or right by the position), and ln2 * log2 splits into ln2 * integer part + ln2 * fraction
 * so that every product fits 32 bits: (C * ((L << 16) + f) + 2^15) >> 16 = C * L + ((C * f +
 * 2^15) >> 16) because C * L << 16 is a multiple of 2^16. The result is below 2^11 for every
 * uint32 input, so TF's clamp to 65535 never acts. */
static inline uint32_t log_value(const uint32_t value) {
  const int z = __builtin_clz(value);
  const uint32_t integer = (uint32_t)(31 - z);
  const uint32_t frac = (value << z) >> 15 & 0xFFFFu;
  const uint32_t seg = frac >> (KWS_FE_LOG_SCALE_LOG2 - KWS_FE_LOG_SEGMENTS_LOG2);
  const int32_t pos = (int32_t)(frac & ((1u << (KWS_FE_LOG_SCALE_LOG2 - KWS_FE_LOG_SEGMENTS_LOG2)) - 1));
  const int32_t c0 = kws_fe_log_lut[seg];
  const int32_t c1 = kws_fe_log_lut[seg + 1];
  const uint32_t fraction = (uint32_t)((int32_t)frac + c0 + (((c1 - c0) * pos) >> KWS_FE_LOG_SCALE_LOG2));
  const uint32_t loge = KWS_FE_LOG_COEFF * integer +
                        ((KWS_FE_LOG_COEFF * fraction + KWS_FE_LOG_SCALE / 2) >> KWS_FE_LOG_SCALE_LOG2);
  return ((loge << KWS_FE_LOG_SCALE_SHIFT) + KWS_FE_LOG_SCALE / 2) >> KWS_FE_LOG_SCALE_LOG2;
}

#if KWS_FE_LOG_CORRECTION_BITS < 0 || KWS_FE_LOG_SCALE_SHIFT > 15
#error "log_scale() assumes a left correction shift and a result below 2^16"
#endif

KWS_FE_STAGE static void log_scale(uint16_t *out) {
  int i;
  for (i = 0; i < KWS_FE_NUM_CHANNELS; ++i) {
    const uint32_t value = s_signal[i] << KWS_FE_LOG_CORRECTION_BITS;
    out[i] = (uint16_t)(value > 1 ? log_value(value) : 0);
  }
}

/* ---- frontend.c ---- */
void kws_frontend_frame(const int16_t *window, uint16_t *values) {
  const int shift = apply_window(window);
  fft_energy(shift);
  filterbank_accumulate(s_spectrum.energy, s_work);
  filterbank_sqrt(shift);
  noise_reduction();
  pcan_gain_control();
  log_scale(values);
}

/* ((v * 256) + 333) / 666 - 128 clamped to int8, as one multiply-add and a saturating shift:
 * (v * 25191 + 32768) >> 16 equals the division for every uint16 v below the clamp (and stays at
 * or above it beyond; the host test checks all 65536 values), and SSAT does the clamp. */
static inline int8_t quantize(uint32_t value) {
  const int32_t t = (int32_t)(value * 25191u + 32768u - (128u << 16));
#if defined(__ARM_FEATURE_SAT) && !defined(KWS_FFT_PORTABLE)
  return (int8_t)__ssat(t >> 16, 8);
#else
  const int32_t q = t >> 16;
  return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
#endif
}

int8_t kws_frontend_quantize(uint16_t value) { return quantize(value); }

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
      features[f * KWS_FRONTEND_CHANNELS + c] = quantize(frame[c]);
    }
  }
  return KWS_FRONTEND_OK;
}
