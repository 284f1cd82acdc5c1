/* Fixed-point arithmetic of TFLite's int8 reference kernels, in plain C99.
 *
 * Why this file exists: bit-exactness with the TFLM reference depends on reproducing its
 * integer rounding exactly (SaturatingRoundingDoublingHighMul + RoundingDivideByPOT, gemmlowp
 * fixed point for softmax). The SIMD helpers map to Cortex-M4 DSP instructions (SXTB16, SMLAD)
 * when __ARM_FEATURE_DSP is defined and to exact C equivalents elsewhere, so the host build runs
 * the very same data layout and summation order that the board runs.
 */
#ifndef KWS_ARITH_H
#define KWS_ARITH_H

#include <stdint.h>
#include <string.h>

/* Inline assembly rather than <arm_acle.h>: the ACLE DSP intrinsics need GCC >= 10, older Arduino
 * toolchains lack them (CMSIS's __SMLAD is written the same way). */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#define KWS_USE_DSP 1
#else
#define KWS_USE_DSP 0
#endif

#if defined(__GNUC__)
#define KWS_INLINE static inline __attribute__((always_inline))
#else
#define KWS_INLINE static inline
#endif

/* TFLM builds with TFLITE_SINGLE_ROUNDING=0 (double rounding); keep the switch for other builds. */
#ifndef KWS_SINGLE_ROUNDING
#define KWS_SINGLE_ROUNDING 0
#endif

/* Unaligned-safe 32-bit load (a single LDR on Cortex-M4). The builtin keeps it one instruction
 * even under -ffreestanding / -fno-builtin, where a plain memcpy would become a call. */
KWS_INLINE uint32_t kws_load32(const void *p) {
    uint32_t v;
#if defined(__GNUC__)
    __builtin_memcpy(&v, p, sizeof v);
#else
    memcpy(&v, p, sizeof v);
#endif
    return v;
}

/* Sign-extend bytes 0 and 2 into two int16 lanes. */
KWS_INLINE uint32_t kws_sxtb16(uint32_t x) {
#if KWS_USE_DSP
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
#else
    uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFFu);
    uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)((x >> 16) & 0xFFu);
    return lo | (hi << 16);
#endif
}

/* Sign-extend bytes 1 and 3 into two int16 lanes (SXTB16 with ROR #8). */
KWS_INLINE uint32_t kws_sxtb16_ror8(uint32_t x) {
#if KWS_USE_DSP
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
#else
    return kws_sxtb16((x >> 8) | (x << 24));
#endif
}

/* acc + lo(a)*lo(b) + hi(a)*hi(b) on int16 lanes. */
KWS_INLINE int32_t kws_smlad(uint32_t a, uint32_t b, int32_t acc) {
#if KWS_USE_DSP
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return acc + (int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b & 0xFFFFu)
               + (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
#endif
}

/* acc + lo16(a) * lo16(b) (SMLABB) and acc + lo16(a) * hi16(b) (SMLABT): one weight times one
 * int16 lane, for weights that are looked up one at a time (6-bit codes, kws_packed.c). */
KWS_INLINE int32_t kws_smlabb(uint32_t a, uint32_t b, int32_t acc) {
#if KWS_USE_DSP
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return acc + (int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b & 0xFFFFu);
#endif
}

KWS_INLINE int32_t kws_smlabt(uint32_t a, uint32_t b, int32_t acc) {
#if KWS_USE_DSP
    int32_t r;
    __asm__("smlabt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return acc + (int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b >> 16);
#endif
}

/* gemmlowp SaturatingRoundingDoublingHighMul. gemmlowp adds 2^30 (or 1 - 2^30 when a*b < 0) and
 * divides by 2^31 truncating toward zero; for a negative product that truncation is a ceiling,
 * which equals floor((a*b + 2^30) / 2^31), so both signs reduce to one add and an arithmetic
 * shift (SMULL, ADDS/ADC, shifts: no sign test, no division). */
KWS_INLINE int32_t kws_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT: round half away from zero. */
KWS_INLINE int32_t kws_rdbypot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* tflite::MultiplyByQuantizedMultiplier (shift > 0 is a left shift). */
KWS_INLINE int32_t kws_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
#if KWS_SINGLE_ROUNDING
    const int total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * multiplier + round) >> total_shift);
#else
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return kws_rdbypot(kws_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
#endif
}

/* kws_requant with the shift split precomputed (kws_channel_q_t): the same integer operations as
 * MultiplyByQuantizedMultiplier with double rounding, minus the per-call shift bookkeeping. */
KWS_INLINE int8_t kws_requant_ch(int32_t acc, int32_t multiplier, int32_t left_shift, int32_t right_shift,
                                 int32_t round_mask, int32_t out_zp, int32_t act_min, int32_t act_max) {
#if KWS_SINGLE_ROUNDING
    int32_t v = kws_mbqm(acc, multiplier, left_shift - right_shift);
    (void)round_mask;
#else
    /* multiplier >= 0 (QuantizeMultiplier output), so SRDHM's INT32_MIN * INT32_MIN case cannot occur */
    const int32_t x = (int32_t)(((int64_t)(int32_t)((uint32_t)acc << left_shift) * multiplier + ((int64_t)1 << 30)) >> 31);
    const int32_t threshold = (round_mask >> 1) + (int32_t)((uint32_t)x >> 31);
    int32_t v = (x >> right_shift) + ((x & round_mask) > threshold ? 1 : 0);
#endif
    v += out_zp;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

/* Rounded high word of a 32x32 product: (a * b + 2^31) >> 32 (SMMULR). */
KWS_INLINE int32_t kws_smmulr(int32_t a, int32_t b) {
#if KWS_USE_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* Saturate to [-128, 127] (SSAT #8). */
KWS_INLINE int32_t kws_ssat8(int32_t v) {
#if KWS_USE_DSP
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return v < -128 ? -128 : v > 127 ? 127 : v;
#endif
}

/* The short exact requantization (codegen proves when it applies, see codegen.short_requant_ok):
 * acc2 is the accumulator already scaled by 2 (weights and bias doubled at generation time), the
 * TFLite shift is right = -shift >= 1, and add = 2^(right-1) + out_zp * 2^right. Then
 *   SRDHM(acc, m)            = (2*acc*m + 2^31) >> 32 = SMMULR(acc2, m)   (|acc2| < 2^31)
 *   RoundingDivideByPOT(x,r) = (x + 2^(r-1) - (x < 0)) >> r             (half away from zero)
 * and adding out_zp * 2^right before the shift adds out_zp after it. Returns the value before
 * the activation clamp. */
KWS_INLINE int32_t kws_requant_short(int32_t acc2, int32_t multiplier, int32_t add, int32_t right) {
    const int32_t x = kws_smmulr(acc2, multiplier);
    return (x + add + (x >> 31)) >> right;
}

/* Requantize an int32 accumulator to int8 with output zero point and activation clamp. */
KWS_INLINE int8_t kws_requant(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                              int32_t act_min, int32_t act_max) {
    int32_t v = kws_mbqm(acc, multiplier, shift) + out_zp;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

#endif /* KWS_ARITH_H */
