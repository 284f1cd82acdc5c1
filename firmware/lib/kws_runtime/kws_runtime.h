/* Kernels of the ahead-of-time int8 runtime (see harness/codegen.py, which emits the calls).
 *
 * Each kernel reproduces the arithmetic of TFLite's int8 reference kernel for that op; the
 * generator folds what it can at build time (input zero point into the bias, multipliers and
 * shifts, padding, weight layout), so the run-time loops only multiply and accumulate.
 * No malloc, no libm, no globals: every buffer comes from the generated static arena.
 */
#ifndef KWS_RUNTIME_H
#define KWS_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Generated constant arrays are word-aligned, so word loads of weights never straddle words. */
#if defined(__GNUC__)
#define KWS_ALIGNED __attribute__((aligned(4)))
#else
#define KWS_ALIGNED
#endif

/* Per-output-channel constants, precomputed so requantization costs no shift arithmetic:
 * TFLite's (multiplier, shift) split into shift > 0 ? (shift, 0) : (0, -shift), plus the
 * RoundingDivideByPOT mask (1 << right_shift) - 1. bias is folded (see CONV_2D below). */
typedef struct {
    int32_t bias;
    int32_t multiplier;
    int32_t left_shift;
    int32_t right_shift;
    int32_t round_mask;
} kws_channel_q_t;

/* CONV_2D, per-channel. Weights are int16 pairs (one uint32 word per SMLAD) in the layout written by codegen.conv_weight_layout:
 * each channel's k_h*k_w*in_c weights (zero-padded to k_padded, a multiple of 8) in groups of 4
 * ordered (w0, w2, w1, w3) to match the SXTB16 / SXTB16-ROR8 lanes of 4 patch bytes; blocks of 4
 * channels interleave their groups, the last out_c % 4 channels follow one by one. bias already
 * contains input_offset * sum(weights), so padding filled with the input zero point adds 0.
 * scratch (4-byte aligned): k_padded bytes of patch, then padded_h * padded_w * in_c bytes if
 * padded_h != 0. */
typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t pad_top, pad_left;
    int16_t padded_h, padded_w; /* scratch geometry when padding is needed, else 0 */
    int16_t k_padded;           /* patch length: k_h * k_w * in_c rounded up to 8 */
    int32_t input_zp;           /* fills the padding */
    int32_t output_zp;
    int32_t act_min, act_max;
    const uint32_t *weights;    /* int16 pairs packed little-endian: (w0 | w2 << 16), (w1 | w3 << 16) */
    const kws_channel_q_t *channels; /* one per output channel */
} kws_conv2d_t;

/* DEPTHWISE_CONV_2D, per-channel, weights [k_h][k_w][out_c] int8 as in the .tflite. */
typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t dilation_h, dilation_w;
    int16_t pad_top, pad_left;
    int16_t depth_multiplier;
    int32_t input_offset;       /* -input zero point */
    int32_t output_zp;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *bias;        /* raw bias (zeros if the model has none) */
    const int32_t *multiplier;
    const int32_t *shift;
} kws_depthwise_t;

/* FULLY_CONNECTED: weights [units][depth] int8; per-tensor or per-channel requantization
 * (per_channel = 0 uses multiplier[0]/shift[0] for every unit). */
typedef struct {
    int32_t batches, depth, units;
    int32_t output_zp;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *weights;
    const int32_t *bias;        /* folded bias: bias + input_offset * sum(row) */
    const int32_t *multiplier;
    const int32_t *shift;
} kws_fc_t;

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), gemmlowp fixed point. */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} kws_softmax_t;

/* --backend ref (kws_ref.c): the .tflite's own layouts and parameters, TFLM reference loops. */
typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t pad_top, pad_left;
    int32_t input_offset;       /* -input zero point */
    int32_t output_zp;
    int32_t act_min, act_max;
    const int8_t *weights;      /* [out_c][k_h][k_w][in_c] */
    const int32_t *bias;        /* raw bias (zeros if the model has none) */
    const int32_t *multiplier;
    const int32_t *shift;
} kws_ref_conv2d_t;

typedef struct {
    int32_t batches, depth, units;
    int32_t input_offset;       /* -input zero point */
    int32_t output_zp;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *weights;      /* [units][depth] */
    const int32_t *bias;        /* raw bias */
    const int32_t *multiplier;
    const int32_t *shift;
} kws_ref_fc_t;

void kws_conv2d_s8(const kws_conv2d_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void kws_depthwise_s8(const kws_depthwise_t *p, const int8_t *in, int8_t *out);
void kws_fc_s8(const kws_fc_t *p, const int8_t *in, int8_t *out);
void kws_softmax_s8(const kws_softmax_t *p, const int8_t *in, int8_t *out);
void kws_ref_conv2d_s8(const kws_ref_conv2d_t *p, const int8_t *in, int8_t *out);
void kws_ref_fc_s8(const kws_ref_fc_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* KWS_RUNTIME_H */
