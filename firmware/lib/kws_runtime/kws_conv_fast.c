/* CONV_2D int8 fast path for 1-channel inputs with horizontal stride 2 (TinyConv's first layer).
 *
 * Exactness: as in kws_conv.c, the padding holds the input zero point and the bias holds
 * -zp * sum(w), so every accumulator equals TFLite's ConvPerChannel sum; when short_q is set the
 * weights and bias are doubled and the accumulator is 2 * that sum, which kws_requant_short turns
 * into the same int8 (codegen proves |2 * acc| < 2^31 and right shifts >= 1 before choosing it).
 *
 * Speed: the input is expanded to int16 once per inference. With stride 2 and an even tap kx,
 * output positions ox and ox + 1 read the int16 pairs at words ox + kx/2 and ox + 1 + kx/2 of a
 * row: one LDRD gives both, one LDRD gives two channels' weight pairs, and four SMLADs use them
 * (16 MACs per 11 instructions for a 4-channel block). The block's dot product is generated
 * Cortex-M4 code (codegen.conv_dot_asm: fully unrolled, immediate offsets, all 14 registers);
 * kws_conv_dot_c below is the same computation in C, used on the host and as the reference.
 */
#include <string.h>

#include "kws_arith.h"
#include "kws_runtime.h"

/* (lo16(a), lo16(b)) and (hi16(a), hi16(b)) as int16 pairs: PKHBT / PKHTB. */
KWS_INLINE uint32_t pack_lo(uint32_t a, uint32_t b) {
#if KWS_USE_DSP
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (a & 0xFFFFu) | (b << 16);
#endif
}

KWS_INLINE uint32_t pack_hi(uint32_t a, uint32_t b) {
#if KWS_USE_DSP
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
#else
    return (a >> 16) | (b & 0xFFFF0000u);
#endif
}

/* Expanded input: rows_q x row_q int16, zero point in the padding, the input at (pad_top, pad_left). */
static void expand_input(const kws_conv2d_fast_t *p, const int8_t *in, int16_t *xq) {
    const int rows = p->rows_q, cols = p->row_q, in_w = p->in_w, pad_left = p->pad_left;
    const int16_t zp = (int16_t)p->input_zp;
    const uint32_t zz = (uint32_t)(uint16_t)zp * 0x10001u;
    int n_rows = p->in_h, n_cols = in_w;
    if (p->pad_top + n_rows > rows) n_rows = rows - p->pad_top;
    if (pad_left + n_cols > cols) n_cols = cols - pad_left;
    const int right = cols - pad_left - n_cols;
    uint32_t *w = (uint32_t *)(void *)xq; /* row_q is even: rows are whole words */
    for (uint32_t *end = w + p->pad_top * cols / 2; w < end;) *w++ = zz; /* top rows */
    int16_t *d = xq + p->pad_top * cols;
    for (int y = 0; y < n_rows; ++y, in += in_w) {
        for (int i = 0; i < pad_left; ++i) *d++ = zp;
        const int8_t *s = in;
        int n = n_cols;
        for (; n >= 4; n -= 4, s += 4, d += 4) {
            const uint32_t v = kws_load32(s);
            const uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v); /* (x0, x2), (x1, x3) */
            const uint32_t lo = pack_lo(even, odd), hi = pack_hi(even, odd); /* (x0, x1), (x2, x3) */
#if defined(__GNUC__)
            __builtin_memcpy(d, &lo, 4);
            __builtin_memcpy(d + 2, &hi, 4);
#else
            memcpy(d, &lo, 4);
            memcpy(d + 2, &hi, 4);
#endif
        }
        for (; n > 0; --n) *d++ = *s++;
        for (int i = 0; i < right; ++i) *d++ = zp;
    }
    w = (uint32_t *)(void *)d;
    for (uint32_t *end = (uint32_t *)(void *)xq + rows * cols / 2; w < end;) *w++ = zz; /* bottom rows */
}

void kws_conv_dot_c(const int16_t *x, const uint32_t *w, int32_t *acc, int nch, int k_h, int pairs, int row_q) {
    const uint32_t *xr = (const uint32_t *)(const void *)x;
    for (int ky = 0; ky < k_h; ++ky, xr += row_q / 2) {
        for (int j = 0; j < pairs; ++j) {
            const uint32_t x0 = xr[j], x1 = xr[j + 1];
            for (int c = 0; c < nch; ++c, ++w) {
                acc[2 * c] = kws_smlad(*w, x0, acc[2 * c]);
                acc[2 * c + 1] = kws_smlad(*w, x1, acc[2 * c + 1]);
            }
        }
    }
}

KWS_INLINE int8_t requant(const kws_conv2d_fast_t *p, const kws_fast_q_t *q, int32_t acc) {
    if (!p->short_q) {
        const int32_t right = q->right;
        return kws_requant_ch(acc, q->multiplier, q->add, right, (int32_t)(((uint32_t)1 << right) - 1),
                              p->output_zp, p->act_min, p->act_max);
    }
    int32_t v = kws_ssat8(kws_requant_short(acc, q->multiplier, q->add, q->right));
    if (p->full_range) return (int8_t)v;
    v = v < p->act_min ? p->act_min : v;
    v = v > p->act_max ? p->act_max : v;
    return (int8_t)v;
}

/* One block of 2 positions x nch channels (c0 .. c0 + nch - 1, the last may be padding) in C. */
static void block_c(const kws_conv2d_fast_t *p, const int16_t *x, const uint32_t *w, int c0, int nch,
                    int second, int8_t *o) {
    const kws_fast_q_t *q = p->channels + c0;
    int32_t acc[8];
    for (int i = 0; i < nch; ++i) acc[2 * i] = acc[2 * i + 1] = q[i].bias;
    kws_conv_dot_fn dot = p->fused ? 0 : c0 + nch >= p->out_c ? p->dot_last : p->dot_full;
    /* (fused: dot_full is the whole-pair function, not a block dot product) */
    if (dot)
        dot(x, w, acc, 0);
    else
        kws_conv_dot_c(x, w, acc, nch, p->k_h, p->pairs, p->row_q);
    const int n = c0 + nch <= p->out_c ? nch : p->out_c - c0;
    for (int i = 0; i < n; ++i) {
        o[c0 + i] = requant(p, q + i, acc[2 * i]);
        if (second) o[p->out_c + c0 + i] = requant(p, q + i, acc[2 * i + 1]);
    }
}

void kws_conv2d_fast_s8(const kws_conv2d_fast_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    int16_t *xq = (int16_t *)(void *)scratch; /* arena offsets are 4-byte aligned */
    expand_input(p, in, xq);
    const int out_c = p->out_c, out_w = p->out_w, row_q = p->row_q;
    const int block_words = p->k_h * p->pairs; /* weight words per channel */
    const int oc_pad = (out_c + 1) & ~1;        /* blocks of 4 channels, then at most one of 2 */
    const int step_y = p->stride_h * row_q;
    const uint32_t *weights = p->weights;
    if (p->bits) { /* packed: decode once per inference behind the expanded input (row_q even: aligned) */
        uint32_t *decoded = (uint32_t *)(void *)(xq + p->rows_q * row_q);
        kws_conv_fast_decode(p, decoded);
        weights = decoded;
    }
    if (p->fused && p->dot_full) { /* generated code does all channels of a position pair, requantized */
        const kws_conv_dot_fn pair = p->dot_full;
        const kws_fast_q_t *const q = p->channels;
        const int pair_out = 2 * out_c, n_pairs = out_w >> 1;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int16_t *x = xq + oy * step_y;
            for (int i = 0; i < n_pairs; ++i, x += 4, out += pair_out) pair(x, weights, (void *)q, out);
        }
        return;
    }
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int16_t *row = xq + oy * step_y;
        for (int ox = 0; ox < out_w; ox += 2) {
            int8_t *o = out + (oy * out_w + ox) * out_c;
            const uint32_t *w = weights;
            for (int c = 0; c < oc_pad; c += 4) {
                const int nch = oc_pad - c >= 4 ? 4 : 2;
                block_c(p, row + 2 * ox, w, c, nch, ox + 1 < out_w, o);
                w += nch * block_words;
            }
        }
    }
}
