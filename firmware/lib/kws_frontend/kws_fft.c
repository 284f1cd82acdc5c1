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
