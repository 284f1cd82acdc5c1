/* Kernels of the ahead-of-time int8 runtime (see harness/device/codegen.py, which emits the calls).
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

/* CONV_2D fast path (kws_conv_fast.c) for 1-channel inputs with horizontal stride 2, TinyConv's
 * shape. The padded input is expanded to int16 once per inference (rows of row_q values, input
 * zero point in the padding), so for every even tap kx the pair (kx, kx+1) of two neighbouring
 * output positions is one aligned doubleword. Output positions go in pairs, channels in blocks
 * of 4 (then one block of 2; out_c is padded to even with zero channels that are never stored).
 * Weights, in exactly the order the dot product reads them: per block, per kernel row, per tap
 * pair, one word (w[kx] | w[kx+1] << 16) per channel of the block. When short_q is set, weights
 * and biases are doubled and requantization is kws_requant_short; otherwise kws_requant_ch. */
typedef struct {
    int32_t multiplier;
    int32_t add;         /* short_q: 2^(right-1) + out_zp * 2^right; else the left shift.
                          * A short_q channel with all-zero weights outputs its constant c:
                          * multiplier 0, add 2c, right 1, bias 0 (codegen folds it) */
    int32_t right;       /* right shift */
    int32_t bias;        /* folded bias (doubled when short_q) */
} kws_fast_q_t;

/* Generated Cortex-M4 code (0 where there is none, e.g. on the host: C runs instead). Unfused
 * (codegen.conv_dot_asm): one block of 2 positions, acc[2 * nch] holds the biases on entry and
 * the sums on return, C requantizes. Fused (codegen.conv_pair_asm, short_q with the full int8
 * range and an even out_w): all channels of a position pair from q's biases, requantized and
 * stored to out. */
typedef void (*kws_conv_dot_fn)(const int16_t *x, const uint32_t *w, void *acc_or_q, int8_t *out);

typedef struct {
    int16_t in_h, in_w;
    int16_t out_h, out_w, out_c;
    int16_t k_h, pairs;         /* kernel rows, tap pairs per row (k_w rounded up to even / 2) */
    int16_t stride_h;
    int16_t pad_top, pad_left;
    int16_t rows_q, row_q;      /* expanded input: rows_q rows of row_q int16 (row_q even) */
    int16_t short_q;            /* 1: kws_requant_short, 0: kws_requant_ch */
    int16_t full_range;         /* activation range is [-128, 127]: SSAT alone clamps */
    int16_t fused;              /* dot_full / dot_last requantize and store (needs even out_w) */
    int32_t input_zp;
    int32_t output_zp;
    int32_t act_min, act_max;
    const uint32_t *weights;
    const kws_fast_q_t *channels; /* out_c rounded up to even */
    int16_t bits;                 /* 2/4/6: weights come packed (below), decoded into scratch per inference */
    const uint8_t *packed;        /* codes of the weights above, in their order, bits each, LSB first */
    const int8_t *tables;         /* [oc_pad][1 << bits] int8 values of the codes (doubled on decoding when short_q) */
    kws_conv_dot_fn dot_full;     /* fused: all channels of a position pair; else every block but the last */
    kws_conv_dot_fn dot_last;     /* unfused: the last block (4 or 2 channels, maybe one padding channel) */
} kws_conv2d_fast_t;

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

/* FULLY_CONNECTED with packed sub-byte weights (kws_packed.c, one function per width, so only the
 * one a model uses is linked): depth % 4 == 0, every unit a table of
 * its 1 << bits int8 values and a row of codes in the layout of codegen.fc_packed_layout (2 bits:
 * row-major bytes; 4 bits: word-aligned rows, unit pairs interleaved word by word; 6 bits: 4 input
 * words in 3 words). Scratch: 2 bits, KWS_FC_CHUNK * 16 bytes of decoded weights and 4 byte-indexed
 * tables (4 KB); 4 bits, 2 pair tables (2 KB); 6 bits, none. */
#define KWS_FC_CHUNK 64
typedef struct {
    int32_t batches, depth, units;
    int32_t output_zp;
    int32_t act_min, act_max;
    int32_t per_channel;
    int32_t bits;
    const uint8_t *packed;      /* word-aligned, see above */
    const int8_t *tables;       /* [units][1 << bits] */
    const int32_t *bias;        /* folded bias: bias + input_offset * sum(row) */
    const int32_t *multiplier;
    const int32_t *shift;
} kws_fc_packed_t;

/* FULLY_CONNECTED with sparse weights (kws_packed.c): per unit groups[u] groups of 4 nonzeros,
 * each group 4 position steps (step_bits 4: 2 bytes, LSB first; 8: 4 bytes) and 4 int8 values. */
typedef struct {
    int32_t batches, depth, units;
    int32_t output_zp;
    int32_t act_min, act_max;
    int32_t per_channel;
    int32_t step_bits;          /* 4 or 8 */
    const uint16_t *groups;     /* [units] */
    const uint8_t *steps;       /* 2 or 4 bytes per group */
    const int8_t *values;       /* 4 per group */
    const int32_t *bias;        /* folded bias, as kws_fc_t */
    const int32_t *multiplier;
    const int32_t *shift;
} kws_fc_sparse_t;

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
void kws_conv2d_fast_s8(const kws_conv2d_fast_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void kws_conv_fast_decode(const kws_conv2d_fast_t *p, uint32_t *dst);
void kws_conv_dot_c(const int16_t *x, const uint32_t *w, int32_t *acc, int nch, int k_h, int pairs, int row_q);
void kws_depthwise_s8(const kws_depthwise_t *p, const int8_t *in, int8_t *out);
void kws_fc_s8(const kws_fc_t *p, const int8_t *in, int8_t *out);
void kws_fc_packed2_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void kws_fc_packed4_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void kws_fc_packed6_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out);
void kws_fc_sparse_s8(const kws_fc_sparse_t *p, const int8_t *in, int8_t *out);
void kws_fc_dot4(const int8_t *x, const int8_t *w, int32_t *acc, int groups);
void kws_softmax_s8(const kws_softmax_t *p, const int8_t *in, int8_t *out);
void kws_ref_conv2d_s8(const kws_ref_conv2d_t *p, const int8_t *in, int8_t *out);
void kws_ref_fc_s8(const kws_ref_fc_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* KWS_RUNTIME_H */
