/* Host-only generator of kws_frontend_tables.{c,h}: the tables that TF's microfrontend
 * computes at init with float math and libm (window, kissfft twiddles, mel filterbank
 * weights, PCAN gain LUT). WHY a generator in C: the expressions below keep TF's exact
 * float/double types and evaluation order, so the host's libm gives the same bits as the
 * TF op's init code; the firmware then needs no float and no libm.
 *
 * Build and run (frontend_native.py does this in a test to check the tables are current):
 *   gcc -O1 -DKWS_FRONTEND_TABLEGEN tools/kws_frontend_tablegen.c -lm -o gen && ./gen DIR
 *
 * Ported from tensorflow/lite/experimental/microfrontend/lib/{window_util,filterbank_util,
 * noise_reduction_util,pcan_gain_control_util}.c (Apache-2.0, Copyright 2018 The TensorFlow
 * Authors) and KISS FFT 131.1.0 kiss_fft.c / kiss_fftr.c (BSD-3-Clause, Mark Borgerding).
 * The whole file is guarded so that a firmware build that globs *.c compiles it to nothing.
 */
#ifdef KWS_FRONTEND_TABLEGEN

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* micro_speech configuration (TF op attributes are float, hence the f suffixes). */
#define SAMPLE_RATE 16000
#define WINDOW_MS 30
#define STEP_MS 20
#define NUM_CHANNELS 40
static const float kLowerBandLimit = 125.0f;
static const float kUpperBandLimit = 7500.0f;
#define SMOOTHING_BITS 10
static const float kEvenSmoothing = 0.025f;
static const float kOddSmoothing = 0.06f;
static const float kMinSignalRemaining = 0.05f;
static const float kPcanStrength = 0.95f;
static const float kPcanOffset = 80.0f;
#define PCAN_GAIN_BITS 21
#define LOG_SCALE_SHIFT 6

#define kFrontendWindowBits 12
#define kFilterbankBits 12
#define kNoiseReductionBits 14
#define kPcanSnrBits 12
#define kWideDynamicFunctionBits 32
#define kWideDynamicFunctionLUTSize (4 * kWideDynamicFunctionBits - 3)
#define kFilterbankIndexAlignment 4
#define kFilterbankChannelBlockSize 4

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static int msb32(uint32_t n) { return n == 0 ? 0 : 32 - __builtin_clz(n); }

/* ---- window (window_util.c) ---- */
static int window_size, window_step;
static int16_t window_coefs[4096];

static void make_window(void) {
  window_size = WINDOW_MS * SAMPLE_RATE / 1000;
  window_step = STEP_MS * SAMPLE_RATE / 1000;
  const float arg = M_PI * 2.0 / ((float)window_size);
  int i;
  for (i = 0; i < window_size; ++i) {
    float float_value = 0.5 - (0.5 * cos(arg * (i + 0.5)));
    window_coefs[i] = floor(float_value * (1 << kFrontendWindowBits) + 0.5);
  }
}

/* ---- kissfft twiddles (kiss_fft.c / kiss_fftr.c 131.1.0, FIXED_POINT=16) ---- */
#define SAMP_MAX 32767
#define KISS_FFT_COS(phase) floor(.5 + SAMP_MAX * cos(phase))
#define KISS_FFT_SIN(phase) floor(.5 + SAMP_MAX * sin(phase))
static int fft_size;
static int16_t tw_r[4096], tw_i[4096], stw_r[4096], stw_i[4096];

static void make_twiddles(void) {
  fft_size = 1;
  while (fft_size < window_size) fft_size <<= 1;
  const int nfft = fft_size / 2; /* kiss_fftr runs a complex FFT of half the size */
  int i;
  for (i = 0; i < nfft; ++i) {
    const double pi = 3.141592653589793238462643383279502884197169399375105820974944;
    double phase = -2 * pi * i / nfft;
    tw_r[i] = (int16_t)KISS_FFT_COS(phase);
    tw_i[i] = (int16_t)KISS_FFT_SIN(phase);
  }
  for (i = 0; i < nfft / 2; ++i) {
    double phase = -3.14159265358979323846264338327 * ((double)(i + 1) / nfft + .5);
    stw_r[i] = (int16_t)KISS_FFT_COS(phase);
    stw_i[i] = (int16_t)KISS_FFT_SIN(phase);
  }
}

/* ---- mel filterbank (filterbank_util.c) ---- */
static float FreqToMel(float freq) { return 1127.0 * log1p(freq / 700.0); }

static int fb_start_index, fb_end_index, fb_num_weights;
static int16_t fb_chan_freq_starts[NUM_CHANNELS + 1], fb_chan_weight_starts[NUM_CHANNELS + 1],
    fb_chan_widths[NUM_CHANNELS + 1];
static int16_t fb_weights[4096], fb_unweights[4096];

static void make_filterbank(void) {
  const int num_channels_plus_1 = NUM_CHANNELS + 1;
  const int spectrum_size = fft_size / 2 + 1;
  const int index_alignment = (kFilterbankIndexAlignment < sizeof(int16_t)
                                   ? 1
                                   : kFilterbankIndexAlignment / sizeof(int16_t));
  float center_mel_freqs[NUM_CHANNELS + 1];
  int16_t actual_channel_starts[NUM_CHANNELS + 1], actual_channel_widths[NUM_CHANNELS + 1];

  {
    const float mel_low = FreqToMel(kLowerBandLimit);
    const float mel_hi = FreqToMel(kUpperBandLimit);
    const float mel_span = mel_hi - mel_low;
    const float mel_spacing = mel_span / ((float)num_channels_plus_1);
    int i;
    for (i = 0; i < num_channels_plus_1; ++i) {
      center_mel_freqs[i] = mel_low + (mel_spacing * (i + 1));
    }
  }

  const float hz_per_sbin = 0.5 * SAMPLE_RATE / ((float)spectrum_size - 1);
  fb_start_index = 1.5 + kLowerBandLimit / hz_per_sbin;
  fb_end_index = 0;

  int chan_freq_index_start = fb_start_index;
  int weight_index_start = 0;
  int needs_zeros = 0;
  int chan;
  for (chan = 0; chan < num_channels_plus_1; ++chan) {
    int freq_index = chan_freq_index_start;
    while (FreqToMel((freq_index)*hz_per_sbin) <= center_mel_freqs[chan]) {
      ++freq_index;
    }
    const int width = freq_index - chan_freq_index_start;
    actual_channel_starts[chan] = chan_freq_index_start;
    actual_channel_widths[chan] = width;
    if (width == 0) {
      fb_chan_freq_starts[chan] = 0;
      fb_chan_weight_starts[chan] = 0;
      fb_chan_widths[chan] = kFilterbankChannelBlockSize;
      if (!needs_zeros) {
        needs_zeros = 1;
        int j;
        for (j = 0; j < chan; ++j) fb_chan_weight_starts[j] += kFilterbankChannelBlockSize;
        weight_index_start += kFilterbankChannelBlockSize;
      }
    } else {
      const int aligned_start = (chan_freq_index_start / index_alignment) * index_alignment;
      const int aligned_width = (chan_freq_index_start - aligned_start + width);
      const int padded_width =
          (((aligned_width - 1) / kFilterbankChannelBlockSize) + 1) * kFilterbankChannelBlockSize;
      fb_chan_freq_starts[chan] = aligned_start;
      fb_chan_weight_starts[chan] = weight_index_start;
      fb_chan_widths[chan] = padded_width;
      weight_index_start += padded_width;
    }
    chan_freq_index_start = freq_index;
  }
  fb_num_weights = weight_index_start;
  memset(fb_weights, 0, sizeof(fb_weights));
  memset(fb_unweights, 0, sizeof(fb_unweights));

  const float mel_low = FreqToMel(kLowerBandLimit);
  for (chan = 0; chan < num_channels_plus_1; ++chan) {
    int frequency = actual_channel_starts[chan];
    const int num_frequencies = actual_channel_widths[chan];
    const int frequency_offset = frequency - fb_chan_freq_starts[chan];
    const int weight_start = fb_chan_weight_starts[chan];
    const float denom_val = (chan == 0) ? mel_low : center_mel_freqs[chan - 1];
    int j;
    for (j = 0; j < num_frequencies; ++j, ++frequency) {
      const float weight = (center_mel_freqs[chan] - FreqToMel(frequency * hz_per_sbin)) /
                           (center_mel_freqs[chan] - denom_val);
      const int weight_index = weight_start + frequency_offset + j;
      fb_weights[weight_index] = floor(weight * (1 << kFilterbankBits) + 0.5);
      fb_unweights[weight_index] = floor((1.0 - weight) * (1 << kFilterbankBits) + 0.5);
    }
    if (frequency > fb_end_index) fb_end_index = frequency;
  }
  if (fb_end_index >= spectrum_size) {
    fprintf(stderr, "tablegen: filterbank end_index %d >= spectrum size %d\n", fb_end_index,
            spectrum_size);
    exit(1);
  }
}

/* ---- noise reduction (noise_reduction_util.c) ---- */
static uint16_t nr_even, nr_odd, nr_min_remaining;
static void make_noise_reduction(void) {
  nr_odd = kOddSmoothing * (1 << kNoiseReductionBits);
  nr_even = kEvenSmoothing * (1 << kNoiseReductionBits);
  nr_min_remaining = kMinSignalRemaining * (1 << kNoiseReductionBits);
}

/* ---- PCAN gain LUT (pcan_gain_control_util.c) ---- */
#define kint16max 0x00007FFF
static int16_t pcan_lut[kWideDynamicFunctionLUTSize];
static int pcan_snr_shift, correction_bits;

static int16_t PcanGainLookupFunction(int32_t input_bits, uint32_t x) {
  const float x_as_float = ((float)x) / ((uint32_t)1 << input_bits);
  const float gain_as_float =
      ((uint32_t)1 << PCAN_GAIN_BITS) * powf(x_as_float + kPcanOffset, -kPcanStrength);
  if (gain_as_float > kint16max) return kint16max;
  return (int16_t)(gain_as_float + 0.5f);
}

static void make_pcan(void) {
  correction_bits = msb32((uint32_t)fft_size) - 1 - (kFilterbankBits / 2);
  pcan_snr_shift = PCAN_GAIN_BITS - correction_bits - kPcanSnrBits;
  const int32_t input_bits = SMOOTHING_BITS - correction_bits;
  int16_t *lut = pcan_lut;
  memset(pcan_lut, 0, sizeof(pcan_lut));
  lut[0] = PcanGainLookupFunction(input_bits, 0);
  lut[1] = PcanGainLookupFunction(input_bits, 1);
  int interval;
  for (interval = 2; interval <= kWideDynamicFunctionBits; ++interval) {
    const uint32_t x0 = (uint32_t)1 << (interval - 1);
    const uint32_t x1 = x0 + (x0 >> 1);
    const uint32_t x2 = (interval == kWideDynamicFunctionBits) ? x0 + (x0 - 1) : 2 * x0;
    const int16_t y0 = PcanGainLookupFunction(input_bits, x0);
    const int16_t y1 = PcanGainLookupFunction(input_bits, x1);
    const int16_t y2 = PcanGainLookupFunction(input_bits, x2);
    const int32_t diff1 = (int32_t)y1 - y0;
    const int32_t diff2 = (int32_t)y2 - y0;
    const int32_t a1 = 4 * diff1 - diff2;
    const int32_t a2 = diff2 - a1;
    lut[4 * interval - 6] = y0;
    lut[4 * interval - 6 + 1] = (int16_t)a1;
    lut[4 * interval - 6 + 2] = (int16_t)a2;
  }
}

/* ---- output ---- */
static const char *sep(int i, int per_line) {
  return i == 0 ? "\n    " : (i % per_line) ? ", " : ",\n    ";
}

static void put_i16(FILE *f, const char *decl, const int16_t *v, int n) {
  int i;
  fprintf(f, "%s = {", decl);
  for (i = 0; i < n; ++i) fprintf(f, "%s%d", sep(i, 12), v[i]);
  fprintf(f, "};\n\n");
}

static const char kLicense[] =
    "/* GENERATED by tools/kws_frontend_tablegen.c -- do not edit; rerun the generator.\n"
    " *\n"
    " * Values computed with the init code of tensorflow/lite/experimental/microfrontend/lib\n"
    " * (Apache-2.0, Copyright 2018 The TensorFlow Authors) and KISS FFT 131.1.0\n"
    " * (BSD-3-Clause, Copyright (c) 2003-2010 Mark Borgerding); see NOTICE.\n"
    " * micro_speech settings: 16 kHz, window 30 ms, step 20 ms, 40 channels, 125..7500 Hz,\n"
    " * noise reduction 0.025/0.06/0.05 (smoothing bits 10), PCAN 0.95/80/21, log shift 6.\n"
    " */\n";

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  make_window();
  make_twiddles();
  make_filterbank();
  make_noise_reduction();
  make_pcan();

  char path[4096];
  snprintf(path, sizeof(path), "%s/kws_frontend_tables.h", argv[1]);
  FILE *h = fopen(path, "w");
  if (!h) {
    perror(path);
    return 1;
  }
  fprintf(h, "%s", kLicense);
  fprintf(h, "#ifndef KWS_FRONTEND_TABLES_H_\n#define KWS_FRONTEND_TABLES_H_\n\n");
  fprintf(h, "#include <stdint.h>\n\n#include \"kws_fft.h\"\n\n");
  fprintf(h, "#define KWS_FE_WINDOW_SIZE %d\n", window_size);
  fprintf(h, "#define KWS_FE_WINDOW_STEP %d\n", window_step);
  fprintf(h, "#define KWS_FE_FFT_SIZE %d\n", fft_size);
  fprintf(h, "#define KWS_FE_NUM_CHANNELS %d\n", NUM_CHANNELS);
  fprintf(h, "#define KWS_FE_FB_START_INDEX %d\n", fb_start_index);
  fprintf(h, "#define KWS_FE_FB_END_INDEX %d\n", fb_end_index);
  fprintf(h, "#define KWS_FE_FB_NUM_WEIGHTS %d\n", fb_num_weights);
  fprintf(h, "#define KWS_FE_NR_SMOOTHING_BITS %d\n", SMOOTHING_BITS);
  fprintf(h, "#define KWS_FE_NR_EVEN_SMOOTHING %u\n", nr_even);
  fprintf(h, "#define KWS_FE_NR_ODD_SMOOTHING %u\n", nr_odd);
  fprintf(h, "#define KWS_FE_NR_MIN_SIGNAL_REMAINING %u\n", nr_min_remaining);
  fprintf(h, "#define KWS_FE_PCAN_SNR_SHIFT %d\n", pcan_snr_shift);
  fprintf(h, "#define KWS_FE_PCAN_LUT_SIZE %d\n", kWideDynamicFunctionLUTSize);
  fprintf(h, "#define KWS_FE_LOG_SCALE_SHIFT %d\n", LOG_SCALE_SHIFT);
  fprintf(h, "#define KWS_FE_LOG_CORRECTION_BITS %d\n\n", correction_bits);
  fprintf(h, "extern const int16_t kws_fe_window[KWS_FE_WINDOW_SIZE];\n");
  fprintf(h, "/* The same window in Q16 (times 16), one word per sample: SMULWB/SMULWT by it is x * w >> 12. */\n");
  fprintf(h, "extern const int32_t kws_fe_window_q16[KWS_FE_WINDOW_SIZE];\n");
  fprintf(h, "/* Packed complex: real part in bits 0..15, imaginary in 16..31 (two int16). */\n");
  fprintf(h, "extern const uint32_t kws_fe_twiddles[KWS_FE_FFT_SIZE / 2];\n");
  fprintf(h, "extern const kws_cpx_t kws_fe_super_twiddles[KWS_FE_FFT_SIZE / 4];\n");
  fprintf(h, "extern const int16_t kws_fe_fb_channel_frequency_starts[KWS_FE_NUM_CHANNELS + 1];\n");
  fprintf(h, "extern const int16_t kws_fe_fb_channel_weight_starts[KWS_FE_NUM_CHANNELS + 1];\n");
  fprintf(h, "extern const int16_t kws_fe_fb_channel_widths[KWS_FE_NUM_CHANNELS + 1];\n");
  fprintf(h, "extern const int16_t kws_fe_fb_weights[KWS_FE_FB_NUM_WEIGHTS];\n");
  fprintf(h, "extern const int16_t kws_fe_fb_unweights[KWS_FE_FB_NUM_WEIGHTS];\n");
  fprintf(h, "extern const int16_t kws_fe_pcan_gain_lut[KWS_FE_PCAN_LUT_SIZE];\n\n");
  {
    /* The same filterbank as an X-macro list, for code that unrolls it: TERM(bin, weight,
     * unweight) for every bin whose weight or unweight is nonzero (the zero padding that TF's
     * 4-aligned layout adds contributes nothing), END(channel) after each channel's terms. */
    int chan, j;
    fprintf(h, "/* The filterbank's nonzero terms in TF's accumulation order: TERM(channel, bin, weight,\n"
               " * unweight) per bin, END(channel) when channel's weighted sum is complete (its unweighted sum\n"
               " * then starts the next channel's). */\n");
    fprintf(h, "#define KWS_FE_FB_TERMS(TERM, END)");
    for (chan = 0; chan < NUM_CHANNELS + 1; ++chan) {
      for (j = 0; j < fb_chan_widths[chan]; ++j) {
        const int k = fb_chan_weight_starts[chan] + j;
        if (fb_weights[k] == 0 && fb_unweights[k] == 0) continue;
        fprintf(h, " \\\n  TERM(%d, %d, %d, %d)", chan, fb_chan_freq_starts[chan] + j, fb_weights[k],
                fb_unweights[k]);
      }
      fprintf(h, " END(%d)", chan);
    }
    fprintf(h, "\n\n");
  }
  fprintf(h, "#endif /* KWS_FRONTEND_TABLES_H_ */\n");
  fclose(h);

  snprintf(path, sizeof(path), "%s/kws_frontend_tables.c", argv[1]);
  FILE *c = fopen(path, "w");
  if (!c) {
    perror(path);
    return 1;
  }
  fprintf(c, "%s\n#include \"kws_frontend_tables.h\"\n\n", kLicense);
  fprintf(c, "/* Hann window, Q%d. */\n", kFrontendWindowBits);
  put_i16(c, "const int16_t kws_fe_window[KWS_FE_WINDOW_SIZE]", window_coefs, window_size);
  {
    int i;
    fprintf(c, "/* Hann window, Q16 (the Q%d values times 16). */\n", kFrontendWindowBits);
    fprintf(c, "const int32_t kws_fe_window_q16[KWS_FE_WINDOW_SIZE] = {");
    for (i = 0; i < window_size; ++i) fprintf(c, "%s%d", sep(i, 12), window_coefs[i] * (1 << (16 - kFrontendWindowBits)));
    fprintf(c, "};\n\n");
  }
  {
    int i;
    const int n = fft_size / 2;
    fprintf(c, "/* exp(-2 pi i k / %d) in Q15, rounded like kissfft's kf_cexp. */\n", n);
    fprintf(c, "/* Packed: (uint16)real | (uint16)imag << 16, the layout of kws_fft.c's butterflies. */\n");
    fprintf(c, "const uint32_t kws_fe_twiddles[KWS_FE_FFT_SIZE / 2] = {");
    for (i = 0; i < n; ++i)
      fprintf(c, "%s0x%08xu", sep(i, 6),
              (unsigned)((uint16_t)tw_r[i] | ((uint32_t)(uint16_t)tw_i[i] << 16)));
    fprintf(c, "};\n\n/* kiss_fftr super twiddles: exp(-i pi ((k + 1) / %d + 1/2)) in Q15. */\n", n);
    fprintf(c, "const kws_cpx_t kws_fe_super_twiddles[KWS_FE_FFT_SIZE / 4] = {");
    for (i = 0; i < n / 2; ++i)
      fprintf(c, "%s{%d, %d}", sep(i, 6), stw_r[i], stw_i[i]);
    fprintf(c, "};\n\n");
  }
  fprintf(c, "/* Mel filterbank layout: channel k accumulates channel_widths[k] bins from\n"
             " * channel_frequency_starts[k] with weights from channel_weight_starts[k]. */\n");
  put_i16(c, "const int16_t kws_fe_fb_channel_frequency_starts[KWS_FE_NUM_CHANNELS + 1]",
          fb_chan_freq_starts, NUM_CHANNELS + 1);
  put_i16(c, "const int16_t kws_fe_fb_channel_weight_starts[KWS_FE_NUM_CHANNELS + 1]",
          fb_chan_weight_starts, NUM_CHANNELS + 1);
  put_i16(c, "const int16_t kws_fe_fb_channel_widths[KWS_FE_NUM_CHANNELS + 1]", fb_chan_widths,
          NUM_CHANNELS + 1);
  fprintf(c, "/* Triangle weights (and 1 - weight), Q%d. */\n", kFilterbankBits);
  put_i16(c, "const int16_t kws_fe_fb_weights[KWS_FE_FB_NUM_WEIGHTS]", fb_weights, fb_num_weights);
  put_i16(c, "const int16_t kws_fe_fb_unweights[KWS_FE_FB_NUM_WEIGHTS]", fb_unweights,
          fb_num_weights);
  fprintf(c, "/* PCAN wide-dynamic-range gain: piecewise quadratic per power-of-two interval. */\n");
  put_i16(c, "const int16_t kws_fe_pcan_gain_lut[KWS_FE_PCAN_LUT_SIZE]", pcan_lut,
          kWideDynamicFunctionLUTSize);
  fclose(c);
  return 0;
}

#else
/* Not part of the firmware: keeps ISO C happy when a build globs this folder. */
typedef int kws_frontend_tablegen_is_host_only;
#endif /* KWS_FRONTEND_TABLEGEN */
