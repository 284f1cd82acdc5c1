/* Fixed-point real FFT, a port of KISS FFT 131.1.0 (kiss_fft.c, kiss_fftr.c, _kiss_fft_guts.h)
 * built with FIXED_POINT=16, specialised to the front end's 512-point real transform
 * (a 256-point complex FFT, 256 = 4^4, so only the radix-4 butterfly is needed).
 *
 * Every step keeps kissfft's arithmetic: int16 storage (wrap-around on overflow), int32
 * products, rounding by (x + 2^14) >> 15, and division of each stage's inputs by the radix
 * (C_FIXDIV), so the output bits equal those of the TF microfrontend's kiss_fftr().
 *
 * WHY packed complex values: a complex int16 pair in one 32-bit word (real in bits 0..15)
 * lets a Cortex-M4 do kissfft's complex add/sub/multiply with its DSP instructions (SADD16,
 * SSUB16, SMUSD, SMUADX, SSAX, SASX, SMLABB), which compute exactly the same wrapped int16
 * sums and int32 products; that roughly halves the front end's instruction count. Other
 * targets (the host build, tests) use the portable C definitions of the same operations.
 *
 * Copyright (c) 2003-2010, Mark Borgerding. All rights reserved.
 * SPDX-License-Identifier: BSD-3-Clause (full text in NOTICE).
 */
#include "kws_fft.h"

#include <string.h>

/* 4-byte loads/stores of int16 pairs; the builtin stays inline under -ffreestanding too. */
#if defined(__GNUC__)
#define KWS_MEMCPY __builtin_memcpy
#else
#define KWS_MEMCPY memcpy
#endif

#include "kws_frontend_tables.h"

#if KWS_FE_FFT_SIZE != KWS_FFT_SIZE
#error "kws_fft.c is specialised to the generated tables' FFT size"
#endif

#define FRACBITS 15
#define SAMP_MAX 32767
#define ROUND (1 << (FRACBITS - 1))

typedef uint32_t c2; /* packed complex int16: real in bits 0..15, imaginary in bits 16..31 */

static inline int32_t re(c2 a) { return (int16_t)(uint16_t)(a & 0xFFFFu); }
static inline int32_t im(c2 a) { return (int16_t)(uint16_t)(a >> 16); }
/* Truncates both parts to int16, as storing into kiss_fft_cpx does. */
static inline c2 pack(int32_t r, int32_t i) {
  return ((uint32_t)r & 0xFFFFu) | ((uint32_t)i << 16);
}

#if defined(__ARM_FEATURE_SIMD32) && defined(__ARM_FEATURE_DSP) && !defined(KWS_FFT_PORTABLE)
#include <arm_acle.h>
#define S(x) ((int16x2_t)(x))
static inline c2 cadd(c2 a, c2 b) { return (c2)__sadd16(S(a), S(b)); }
static inline c2 csub(c2 a, c2 b) { return (c2)__ssub16(S(a), S(b)); }
/* a.r*b.r - a.i*b.i and a.r*b.i + a.i*b.r */
static inline int32_t mul_re(c2 a, c2 b) { return __smusd(S(a), S(b)); }
static inline int32_t mul_im(c2 a, c2 b) { return __smuadx(S(a), S(b)); }
/* a.r*k + c and a.i*k + c */
static inline int32_t mla_re(c2 a, int32_t k, int32_t c) { return __smlabb(S(a), k, c); }
static inline int32_t mla_im(c2 a, int32_t k, int32_t c) { return __smlatb(S(a), k, c); }
/* (a.r + b.i, a.i - b.r) and (a.r - b.i, a.i + b.r) */
static inline c2 add_sub_x(c2 a, c2 b) { return (c2)__ssax(S(a), S(b)); }
static inline c2 sub_add_x(c2 a, c2 b) { return (c2)__sasx(S(a), S(b)); }
#define KWS_FFT_DSP 1
/* PKHTB: top half of `top`, bottom half of `bot >> 15` (arithmetic): packs two rounded Q15
 * products in one instruction (GCC has no intrinsic for it). */
static inline c2 pkhtb15(uint32_t top, int32_t bot) {
  c2 r;
  __asm__("pkhtb %0, %1, %2, asr #15" : "=r"(r) : "r"(top), "r"(bot));
  return r;
}
/* PKHBT: bottom half of `bot`, bottom half of `top` into the top half. */
static inline c2 pkhbt16(int32_t bot, int32_t top) {
  c2 r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(bot), "r"(top));
  return r;
}
#else
static inline c2 cadd(c2 a, c2 b) { return pack(re(a) + re(b), im(a) + im(b)); }
static inline c2 csub(c2 a, c2 b) { return pack(re(a) - re(b), im(a) - im(b)); }
static inline int32_t mul_re(c2 a, c2 b) { return re(a) * re(b) - im(a) * im(b); }
static inline int32_t mul_im(c2 a, c2 b) { return re(a) * im(b) + im(a) * re(b); }
static inline int32_t mla_re(c2 a, int32_t k, int32_t c) { return re(a) * k + c; }
static inline int32_t mla_im(c2 a, int32_t k, int32_t c) { return im(a) * k + c; }
static inline c2 add_sub_x(c2 a, c2 b) { return pack(re(a) + im(b), im(a) - re(b)); }
static inline c2 sub_add_x(c2 a, c2 b) { return pack(re(a) - im(b), im(a) + re(b)); }
#endif

/* C_MUL: (a * b) in Q15 with kissfft's rounding. */
static inline c2 cmul(c2 a, c2 b) {
  return pack((mul_re(a, b) + ROUND) >> FRACBITS, (mul_im(a, b) + ROUND) >> FRACBITS);
}

/* C_FIXDIV(c, div): both parts times SAMP_MAX/div in Q15, rounded. */
static inline c2 fixdiv(c2 a, int32_t div) {
  const int32_t k = SAMP_MAX / div;
  return pack(mla_re(a, k, ROUND) >> FRACBITS, mla_im(a, k, ROUND) >> FRACBITS);
}

/* kissfft's factorisation of 256: radix 4 four times; (p, m) pairs as in kf_factor(). */
static const int kFactors[8] = {4, 64, 4, 16, 4, 4, 4, 1};

static c2 s_tmpbuf[KWS_FFT_CPX];

/* kf_bfly4, forward direction. */
static void bfly4(c2 *Fout, const int fstride, const int m) {
  const c2 *tw1 = kws_fe_twiddles, *tw2 = kws_fe_twiddles, *tw3 = kws_fe_twiddles;
  const int m2 = 2 * m;
  const int m3 = 3 * m;
  int k = m;
  do {
    c2 f0 = fixdiv(Fout[0], 4);
    const c2 f1 = fixdiv(Fout[m], 4);
    const c2 f2 = fixdiv(Fout[m2], 4);
    const c2 f3 = fixdiv(Fout[m3], 4);

    const c2 s0 = cmul(f1, *tw1);
    const c2 s1 = cmul(f2, *tw2);
    const c2 s2 = cmul(f3, *tw3);

    const c2 s5 = csub(f0, s1);
    f0 = cadd(f0, s1);
    const c2 s3 = cadd(s0, s2);
    const c2 s4 = csub(s0, s2);
    Fout[m2] = csub(f0, s3);
    tw1 += fstride;
    tw2 += fstride * 2;
    tw3 += fstride * 3;
    Fout[0] = cadd(f0, s3);

    Fout[m] = add_sub_x(s5, s4);
    Fout[m3] = sub_add_x(s5, s4);
    ++Fout;
  } while (--k);
}

/* kf_work: decimation in time, recursing over the factors (depth 4 here). */
static void work(c2 *Fout, const kws_cpx_t *f, int fstride, const int *factors) {
  c2 *const Fout_beg = Fout;
  const int p = *factors++;
  const int m = *factors++;
  const c2 *const Fout_end = Fout + p * m;
  if (m == 1) {
    do {
      *Fout = pack(f->r, f->i);
      f += fstride;
    } while (++Fout != Fout_end);
  } else {
    do {
      work(Fout, f, fstride * p, factors);
      f += fstride;
    } while ((Fout += m) != Fout_end);
  }
  bfly4(Fout_beg, fstride, m);
}

void kws_fft_real(const kws_cpx_t *in, kws_cpx_t *out) {
  const int ncfft = KWS_FFT_CPX;
  int k;

  /* Parallel FFT of the even and odd samples packed as real and imaginary parts. */
  work(s_tmpbuf, in, 1, kFactors);

  const c2 tdc = fixdiv(s_tmpbuf[0], 2);
  out[0].r = (int16_t)(re(tdc) + im(tdc));
  out[ncfft].r = (int16_t)(re(tdc) - im(tdc));
  out[ncfft].i = out[0].i = 0;

  for (k = 1; k <= ncfft / 2; ++k) {
    const c2 fpk = fixdiv(s_tmpbuf[k], 2);
    const c2 nk = s_tmpbuf[ncfft - k];
    const c2 fpnk = fixdiv(pack(re(nk), -im(nk)), 2); /* conjugate, stored as int16 first */

    const c2 f1k = cadd(fpk, fpnk);
    const c2 f2k = csub(fpk, fpnk);
    const c2 tw = cmul(f2k, pack(kws_fe_super_twiddles[k - 1].r, kws_fe_super_twiddles[k - 1].i));

    /* HALF_OF(x) = x >> 1 on the int sum of two int16 (no wrap before halving). */
    out[k].r = (int16_t)((re(f1k) + re(tw)) >> 1);
    out[k].i = (int16_t)((im(f1k) + im(tw)) >> 1);
    out[ncfft - k].r = (int16_t)((re(f1k) - re(tw)) >> 1);
    out[ncfft - k].i = (int16_t)((im(tw) - im(f1k)) >> 1);
  }
}

/* ---------------------------------------------------------------------------------------------
 * kws_fft_energy: the same arithmetic, reorganised for the Cortex-M4 (the front end's hot path).
 *
 * kissfft recurses depth first; every butterfly only depends on its own four inputs, so running
 * the 4 x 64 butterflies stage by stage gives the same bits. What changes is the instruction
 * count: the leaf copy (digit reversal) is fused with TF's input shift into the first stage,
 * each stage's twiddle triples are read from one contiguous table (one LDM), C_FIXDIV and C_MUL
 * become two multiply-accumulates plus one PKHTB (the imaginary product computed doubled, so its
 * Q15 result already sits in the top half), and the real-FFT split writes squared magnitudes
 * (SMUAD) instead of bins.
 * --------------------------------------------------------------------------------------------- */

#if defined(KWS_FFT_DSP)
/* C_FIXDIV(a, 4) and (a, 2): k and 2k packed so SMLATT yields the doubled imaginary sum. */
#define K4 ((uint32_t)(SAMP_MAX / 4) | ((uint32_t)(2 * (SAMP_MAX / 4)) << 16))
#define K2 ((uint32_t)(SAMP_MAX / 2) | ((uint32_t)(2 * (SAMP_MAX / 2)) << 16))
static inline c2 fixdiv_k(c2 a, uint32_t kk) {
  return pkhtb15((uint32_t)__smlatt(S(a), (int32_t)kk, 2 * ROUND), __smlabb(S(a), (int32_t)kk, ROUND));
}
#define FIXDIV4(a) fixdiv_k((a), K4)
#define FIXDIV2(a) fixdiv_k((a), K2)
static inline c2 cmul2(c2 a, c2 b) {
  return pkhtb15((uint32_t)__smladx(S(a), S(b), ROUND) << 1, __smlsd(S(a), S(b), ROUND));
}
/* Each int16 lane times 2^shift, truncated to int16 (TF's (uint16)x << shift); `scale` = 2^shift
 * in its low half (2^15 reads as -2^15 there, the same product modulo 2^16). */
static inline c2 shl16x2(c2 a, int32_t scale) {
  c2 r, lo, hi;
  __asm__("smulbb %1, %3, %4\n\tsmultb %2, %3, %4\n\tpkhbt %0, %1, %2, lsl #16"
          : "=r"(r), "=&r"(lo), "=&r"(hi) : "r"(a), "r"(scale));
  return r;
}
/* (a.r + b.r) >> 1, (a.i + b.i) >> 1 without wrapping first: HALF_OF(x + y). */
static inline c2 halfadd(c2 a, c2 b) { return (c2)__shadd16(S(a), S(b)); }
static inline c2 halfsub(c2 a, c2 b) { return (c2)__shsub16(S(a), S(b)); }
/* Top half of `top`, bottom half of `bot` (PKHBT). */
static inline c2 top_bot(c2 top, c2 bot) {
  c2 r;
  __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(bot), "r"(top));
  return r;
}
static inline uint32_t energy(c2 a) { return (uint32_t)__smuad(S(a), S(a)); }
/* C_FIXDIV(a << shift, 4) per lane in five instructions: SMULBB/SMULTB by scale = 2^shift give
 * the exact products, whose bottom halves are TF's int16 truncation of x << shift, and SMLABB
 * reads exactly those bottom halves (k, and 2k for the top-half trick of fixdiv_k). */
static inline c2 shift_fixdiv4(c2 a, int32_t scale) {
  int32_t lo, hi;
  __asm__("smulbb %0, %1, %2" : "=r"(lo) : "r"(a), "r"(scale));
  __asm__("smultb %0, %1, %2" : "=r"(hi) : "r"(a), "r"(scale));
  return pkhtb15((uint32_t)__smlabb(hi, 2 * (SAMP_MAX / 4), 2 * ROUND), __smlabb(lo, SAMP_MAX / 4, ROUND));
}
/* C_FIXDIV(conj(a), 2), the conjugate stored as int16 first (-(-32768) wraps to -32768): SASX
 * with 0 gives (-a.i wrapped, a.r) in one instruction, and the swapped halves are read back in
 * place by SMLATB (a.r * k into the bottom) and SMLABT (-a.i * 2k into the top). */
static inline c2 fixdiv2_conj(c2 a) {
  const c2 s = (c2)__sasx(S(0), S(a));
  return pkhtb15((uint32_t)__smlabt(S(s), (int32_t)K2, 2 * ROUND), __smlatb(S(s), (int32_t)K2, ROUND));
}
#else
#define FIXDIV4(a) fixdiv((a), 4)
#define FIXDIV2(a) fixdiv((a), 2)
#define cmul2 cmul
static inline c2 shl16x2(c2 a, int32_t scale) { return pack(re(a) * scale, im(a) * scale); }
static inline c2 halfadd(c2 a, c2 b) { return pack((re(a) + re(b)) >> 1, (im(a) + im(b)) >> 1); }
static inline c2 halfsub(c2 a, c2 b) { return pack((re(a) - re(b)) >> 1, (im(a) - im(b)) >> 1); }
static inline c2 top_bot(c2 top, c2 bot) { return (top & 0xFFFF0000u) | (bot & 0xFFFFu); }
static inline uint32_t energy(c2 a) {
  return (uint32_t)(re(a) * re(a)) + (uint32_t)(im(a) * im(a));
}
static inline c2 shift_fixdiv4(c2 a, int32_t scale) { return fixdiv(shl16x2(a, scale), 4); }
static inline c2 fixdiv2_conj(c2 a) { return fixdiv(top_bot(csub(0, a), a), 2); }
#endif

static inline c2 load_c2(const void *p) {
  c2 v;
  KWS_MEMCPY(&v, p, sizeof v);
  return v;
}

/* One radix-4 butterfly (kf_bfly4, forward) on F[0], F[m], F[2m], F[3m]; MULTW(a, w) is C_MUL,
 * DIV(a) the C_FIXDIV(a, 4) of each input. */
#define BFLY4_(F, m, a0, a1, a2, a3, w1, w2, w3, MULTW) BFLY4_D(F, m, a0, a1, a2, a3, w1, w2, w3, MULTW, FIXDIV4)
#define BFLY4_D(F, m, a0, a1, a2, a3, w1, w2, w3, MULTW, DIV) \
  do {                                                       \
    c2 f0_ = DIV(a0);                                        \
    const c2 s0_ = MULTW(DIV(a1), (w1));                     \
    const c2 s1_ = MULTW(DIV(a2), (w2));                     \
    const c2 s2_ = MULTW(DIV(a3), (w3));                     \
    const c2 s5_ = csub(f0_, s1_);                           \
    f0_ = cadd(f0_, s1_);                                    \
    const c2 s3_ = cadd(s0_, s2_);                           \
    const c2 s4_ = csub(s0_, s2_);                           \
    (F)[2 * (m)] = csub(f0_, s3_);                           \
    (F)[0] = cadd(f0_, s3_);                                 \
    (F)[(m)] = add_sub_x(s5_, s4_);                          \
    (F)[3 * (m)] = sub_add_x(s5_, s4_);                      \
  } while (0)
#define BFLY4(F, m, a0, a1, a2, a3, w1, w2, w3) BFLY4_(F, m, a0, a1, a2, a3, w1, w2, w3, cmul2)
/* Twiddle 0 is (32767, 0), and C_MUL by it returns its input unchanged whenever both parts are
 * in [-16383, 16383]: (x * 32767 + 2^14) >> 15 = x + floor((2^14 - x) / 2^15) = x. Every twiddled
 * value is a C_FIXDIV(., 4) output, within [-8191, 8191], so the k = 0 butterflies (all of the
 * first stage) skip the multiply. */
#define MUL_TW0(a, w) (a)
#define BFLY4_TW0(F, m, a0, a1, a2, a3) BFLY4_(F, m, a0, a1, a2, a3, 0, 0, 0, MUL_TW0)

/* Twiddle triples (k*F, 2k*F, 3k*F) of the stages m = 4, 16, 64 (F = 64 / m), in the order
 * the butterflies use them; filled once from kws_fe_twiddles. */
static c2 s_tw3[3 * (4 + 16 + 64)];
static int s_tw3_ready;

static void init_tw3(void) {
  int m, k, n = 0;
  for (m = 4; m <= 64; m *= 4) {
    const int fstride = KWS_FFT_CPX / (4 * m);
    for (k = 0; k < m; ++k) {
      s_tw3[n++] = kws_fe_twiddles[k * fstride];
      s_tw3[n++] = kws_fe_twiddles[2 * k * fstride];
      s_tw3[n++] = kws_fe_twiddles[3 * k * fstride];
    }
  }
  s_tw3_ready = 1;
}

void kws_fft_prepare(void) {
  if (!s_tw3_ready) init_tw3();
}

/* Base-4 digit reversal of the first stage's group index (kissfft's leaf order). */
static const uint8_t kLeafBase[64] = {
    0, 16, 32, 48, 4, 20, 36, 52, 8, 24, 40, 56, 12, 28, 44, 60, 1, 17, 33, 49, 5, 21,
    37, 53, 9, 25, 41, 57, 13, 29, 45, 61, 2, 18, 34, 50, 6, 22, 38, 54, 10, 26, 42, 58,
    14, 30, 46, 62, 3, 19, 35, 51, 7, 23, 39, 55, 11, 27, 43, 59, 15, 31, 47, 63};

#if defined(KWS_FFT_DSP)
/* one LDM for the twiddle triple (GCC emits three LDRs); ascending registers as LDM needs */
#define BFLY4_NEXT(Fp, m, t)                                                                  \
  do {                                                                                        \
    c2 *const F_ = (Fp);                                                                      \
    register c2 w1 __asm__("r8");                                                             \
    register c2 w2 __asm__("r9");                                                             \
    register c2 w3 __asm__("r10");                                                            \
    __asm__("ldmia %0!, {%1, %2, %3}" : "+r"(t), "=r"(w1), "=r"(w2), "=r"(w3) : : "memory"); \
    BFLY4(F_, m, F_[0], F_[m], F_[2 * m], F_[3 * m], w1, w2, w3);                             \
  } while (0)
#else
#define BFLY4_NEXT(Fp, m, t)                                                      \
  do {                                                                            \
    c2 *const F_ = (Fp);                                                          \
    BFLY4(F_, m, F_[0], F_[m], F_[2 * m], F_[3 * m], (t)[0], (t)[1], (t)[2]);    \
    (t) += 3;                                                             \
  } while (0)
#endif

/* One radix-4 stage: per group of 4m, the twiddle-free butterfly k = 0, then k = 1 .. m-1 two
 * per loop turn (m - 1 is odd: k = 1 goes alone), which halves the loop's own instructions. */
static inline __attribute__((always_inline)) void stage(c2 *buf, const c2 *tw, const int m) {
  c2 *F = buf;
  c2 *const end = buf + KWS_FFT_CPX;
  do {
    const c2 *t = tw + 3;
    c2 *const group_end = F + m;
    BFLY4_TW0(F, m, F[0], F[m], F[2 * m], F[3 * m]);
    ++F;
    BFLY4_NEXT(F, m, t);
    ++F;
    while (F != group_end) {
      BFLY4_NEXT(F, m, t);
      BFLY4_NEXT(F + 1, m, t);
      F += 2;
    }
    F += 3 * m;
  } while (F != end);
}

void kws_fft_energy(const int16_t *samples, int shift, int first, int last, int32_t *out) {
  const int ncfft = KWS_FFT_CPX;
  const int32_t scale = (int32_t)(1u << shift);
  c2 *const buf = s_tmpbuf;
  int j, k;
  if (!s_tw3_ready) init_tw3();

  /* stage 1 (m = 1): gather the leaves, shift them, first butterflies. Leaf j reads complex
   * samples kLeafBase[j] + {0, 64, 128, 192}, and kLeafBase[4d + t] = kLeafBase[4d] + 16t; for
   * t = 3 the last input is complex sample >= 240, which is zero padding (C_FIXDIV(0) = 0: that
   * butterfly takes f3 = 0 and skips its load, shift and division). */
  for (j = 0; j < 64; j += 4) {
    const int16_t *x = samples + 2 * kLeafBase[j];
    c2 *F = buf + 4 * j;
#define SD(a) shift_fixdiv4((a), scale)
    BFLY4_D(F, 1, load_c2(x), load_c2(x + 128), load_c2(x + 256), load_c2(x + 384), 0, 0, 0, MUL_TW0, SD);
    BFLY4_D(F + 4, 1, load_c2(x + 32), load_c2(x + 160), load_c2(x + 288), load_c2(x + 416), 0, 0, 0, MUL_TW0, SD);
    BFLY4_D(F + 8, 1, load_c2(x + 64), load_c2(x + 192), load_c2(x + 320), load_c2(x + 448), 0, 0, 0, MUL_TW0, SD);
    {
      c2 *const G = F + 12;
      const c2 f0 = SD(load_c2(x + 96)), s0 = SD(load_c2(x + 224)), s1 = SD(load_c2(x + 352));
#undef SD
      /* BFLY4 with s2 = 0: s3 = s4 = s0 */
      G[2] = csub(cadd(f0, s1), s0);
      G[0] = cadd(cadd(f0, s1), s0);
      G[1] = add_sub_x(csub(f0, s1), s0);
      G[3] = sub_add_x(csub(f0, s1), s0);
    }
  }
#if KWS_FE_WINDOW_SIZE > 2 * 240
#error "stage 1 takes complex samples 240..255 as zero padding"
#endif
  stage(buf, s_tw3, 4);
  stage(buf, s_tw3 + 3 * 4, 16);
  stage(buf, s_tw3 + 3 * (4 + 16), 64);

  /* kiss_fftr's split of the packed even/odd transform, straight into squared magnitudes.
   * Step k yields bins k and ncfft - k; steps whose two bins are both unused are skipped. */
  if (first <= 0 || last > ncfft) {
    const c2 tdc = FIXDIV2(buf[0]);
    const int32_t dc = (int16_t)(re(tdc) + im(tdc)), ny = (int16_t)(re(tdc) - im(tdc));
    if (first <= 0) out[0] = (int32_t)((uint32_t)(dc * dc));
    if (last > ncfft) out[ncfft] = (int32_t)((uint32_t)(ny * ny));
  }
  /* Step k: fpk = C_FIXDIV(F[k], 2), fpnk = C_FIXDIV(conj(F[n-k]), 2), f1k = fpk + fpnk,
   * f2k = fpk - fpnk, tw = f2k * super_twiddle; bin k = HALF_OF(f1k + tw) and bin n-k =
   * (HALF_OF(f1k.r - tw.r), HALF_OF(tw.i - f1k.i)). Only the squared magnitude of bin n-k is
   * needed, and (f1k.i + 1 - tw.i) >> 1 is exactly -((tw.i - f1k.i) >> 1) (floor(-d/2) =
   * -floor((d+1)/2)), so one SHSUB16 of (f1k + (0, 1)) and tw gives it with the sign flipped
   * (f1k.i <= 32766: fpk and fpnk are within +-16383, so the + 1 never wraps). Steps below
   * ncfft - last + 1 only yield bin k: bin n-k is past the last one used. */
  k = first < ncfft - last + 1 ? first : ncfft - last + 1;
  if (k < 1) k = 1;
  {
    const int k_both = ncfft - last + 1 < ncfft / 2 + 1 ? ncfft - last + 1 : ncfft / 2 + 1;
    const c2 one_hi = pack(0, 1);
#define SPLIT_STEP(k, BOTH)                                                          \
  do {                                                                             \
    const c2 fpk = FIXDIV2(buf[k]);                                                \
    const c2 fpnk = fixdiv2_conj(buf[ncfft - (k)]);                                \
    const c2 f1k = cadd(fpk, fpnk);                                                \
    const c2 f2k = csub(fpk, fpnk);                                                \
    const c2 tw = cmul2(f2k, load_c2(&kws_fe_super_twiddles[(k) - 1]));            \
    out[k] = (int32_t)energy(halfadd(f1k, tw));                                    \
    if (BOTH) out[ncfft - (k)] = (int32_t)energy(halfsub(cadd(f1k, one_hi), tw)); \
  } while (0)
    for (; k < k_both; ++k) SPLIT_STEP(k, 0);
    for (; k <= ncfft / 2; ++k) SPLIT_STEP(k, 1);
#undef SPLIT_STEP
  }
}
