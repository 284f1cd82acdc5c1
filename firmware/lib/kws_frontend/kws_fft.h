/* Fixed-point (Q15, int16) real FFT of 512 points: a port of KISS FFT 131.1.0 built with
 * FIXED_POINT=16, kiss_fftr() over a radix-4 complex FFT of 256 points.
 *
 * WHY a port and not CMSIS-DSP: the host front end (TF audio_microfrontend) uses exactly this
 * kissfft arithmetic, including its per-stage 1/4 scaling and rounding; any other FFT changes
 * the low bits of the spectrum and the features stop being bit-identical.
 *
 * KISS FFT: Copyright (c) 2003-2010, Mark Borgerding. BSD-3-Clause (see NOTICE).
 */
#ifndef KWS_FFT_H_
#define KWS_FFT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FFT_SIZE 512                    /* real input points */
#define KWS_FFT_CPX (KWS_FFT_SIZE / 2)      /* complex FFT length inside kiss_fftr */
#define KWS_FFT_BINS (KWS_FFT_SIZE / 2 + 1) /* output bins, DC .. Nyquist */

typedef struct {
  int16_t r;
  int16_t i;
} kws_cpx_t;

/* Real input packed as kiss_fftr reads it: 256 pairs (x[2k], x[2k+1]) of the 512 samples.
 * out: 257 complex bins, DC .. Nyquist, scaled by 1/512 like kiss_fftr in Q15. */
void kws_fft_real(const kws_cpx_t *in, kws_cpx_t *out);

/* The front end's use of it in one pass: the 512 samples (each first shifted left by `shift`
 * and truncated to int16, as TF's fft.cc does), the real FFT, then the squared magnitude
 * re*re + im*im (uint32 arithmetic) of bins [first, last) into energy[first .. last-1].
 * Bit-identical with kws_fft_real() on the shifted input followed by the magnitudes. Samples from
 * KWS_FE_WINDOW_SIZE (480) on are the front end's zero padding and are not read. Bins past `last`
 * may be left unwritten or written with values nobody reads. */
/* Fill the FFT's twiddle tables now (kws_frontend_reset calls it at start-up), so that the first
 * timed clip does not pay for it; kws_fft_energy still fills them itself if nobody did. */
void kws_fft_prepare(void);

void kws_fft_energy(const int16_t *samples, int shift, int first, int last, int32_t *energy);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FFT_H_ */
