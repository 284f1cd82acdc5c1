/* CONV_2D int8, per-channel requantization: the arithmetic of TFLite's
 * reference_integer_ops::ConvPerChannel, rearranged so the inner loop is SXTB16 + SMLAD.
 *
 * Exactness: the reference sums w * (x + input_offset) over in-bounds taps only. We pad the input
 * with the input zero point (so those taps add w * 0) and sum w * x + input_offset * sum(w), the
 * latter folded into the bias at generation time; integer sums are order-independent, so the
 * accumulator equals the reference's before the same requantization.
 *
 * Speed: each output position gathers its receptive field into a contiguous patch (im2col of one
 * column, k_padded bytes, zero weights beyond k), then four output channels at a time run a
 * branch-free dot product over it: per 4 inputs one LDR + two SXTB16 shared by the channels, and
 * per channel two LDR of pre-interleaved int16 weight pairs + two SMLAD. The 1-3 channels left
 * over when out_c is not a multiple of 4 run together the same way (one shared SXTB16 per word),
 * reading their one-after-another weight streams through separate pointers; only the grouping
 * of the channels differs, not any channel's sum.
 */
#include <string.h>

#include "kws_arith.h"
#include "kws_runtime.h"

KWS_INLINE void kws_store32(void *p, uint32_t v) {
#if defined(__GNUC__)
    __builtin_memcpy(p, &v, sizeof v);
#else
    memcpy(p, &v, sizeof v);
#endif
}

/* Copy the input into the zero-point-filled scratch so no tap needs a bounds check. */
static const int8_t *pad_input(const kws_conv2d_t *p, const int8_t *in, int8_t *padded) {
    const int c = p->in_c;
    memset(padded, (int8_t)p->input_zp, (size_t)p->padded_h * p->padded_w * c);
    for (int iy = 0; iy < p->in_h; ++iy) {
        const int py = iy + p->pad_top;
        if (py >= p->padded_h) break;
        int n = p->in_w;
        if (p->pad_left + n > p->padded_w) n = p->padded_w - p->pad_left;
        memcpy(padded + ((size_t)py * p->padded_w + p->pad_left) * c, in + (size_t)iy * p->in_w * c,
               (size_t)n * c);
    }
    return padded;
}

static void gather_patch(int8_t *patch, const int8_t *base, int k_h, int row_len, int src_row) {
    for (int ky = 0; ky < k_h; ++ky, base += src_row) {
        const int8_t *s = base;
        int n = row_len;
        for (; n >= 4; n -= 4, s += 4, patch += 4) kws_store32(patch, kws_load32(s));
        for (; n > 0; --n) *patch++ = *s++;
    }
}

#define REQUANT(acc, ch) \
    kws_requant_ch((acc), (ch).multiplier, (ch).left_shift, (ch).right_shift, (ch).round_mask, zp, lo, hi)

/* The 1-3 channels left over when out_c is not a multiple of 4. Their weight streams follow one
 * another (conv_weight_layout, `half` words each), but they run together so each patch word is
 * loaded and sign-extended once for all of them. Each dot product is its own small function, out
 * of line, so neither it nor the 4-channel loop of kws_conv2d_s8 runs short of registers;
 * acc holds the biases on entry and the sums on return. */
#if defined(__GNUC__)
#define KWS_NOINLINE __attribute__((noinline))
#else
#define KWS_NOINLINE
#endif

static KWS_NOINLINE void conv_dot3(const uint32_t *x, const uint32_t *end, const uint32_t *w, int half,
                                   int32_t *acc) {
    const uint32_t *w1 = w + half, *w2 = w1 + half;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2];
    do {
        uint32_t v = x[0];
        uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
        a0 = kws_smlad(w[0], even, a0);
        a0 = kws_smlad(w[1], odd, a0);
        a1 = kws_smlad(w1[0], even, a1);
        a1 = kws_smlad(w1[1], odd, a1);
        a2 = kws_smlad(w2[0], even, a2);
        a2 = kws_smlad(w2[1], odd, a2);
        v = x[1];
        even = kws_sxtb16(v);
        odd = kws_sxtb16_ror8(v);
        a0 = kws_smlad(w[2], even, a0);
        a0 = kws_smlad(w[3], odd, a0);
        a1 = kws_smlad(w1[2], even, a1);
        a1 = kws_smlad(w1[3], odd, a1);
        a2 = kws_smlad(w2[2], even, a2);
        a2 = kws_smlad(w2[3], odd, a2);
        x += 2;
        w += 4;
        w1 += 4;
        w2 += 4;
    } while (x < end);
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
}

static KWS_NOINLINE void conv_dot2(const uint32_t *x, const uint32_t *end, const uint32_t *w, int half,
                                   int32_t *acc) {
    const uint32_t *w1 = w + half;
    int32_t a0 = acc[0], a1 = acc[1];
    do {
        uint32_t v = x[0];
        uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
        a0 = kws_smlad(w[0], even, a0);
        a0 = kws_smlad(w[1], odd, a0);
        a1 = kws_smlad(w1[0], even, a1);
        a1 = kws_smlad(w1[1], odd, a1);
        v = x[1];
        even = kws_sxtb16(v);
        odd = kws_sxtb16_ror8(v);
        a0 = kws_smlad(w[2], even, a0);
        a0 = kws_smlad(w[3], odd, a0);
        a1 = kws_smlad(w1[2], even, a1);
        a1 = kws_smlad(w1[3], odd, a1);
        x += 2;
        w += 4;
        w1 += 4;
    } while (x < end);
    acc[0] = a0;
    acc[1] = a1;
}

/* Channels c..out_c-1 (1 to 3 of them) of one output position; x..end is the patch (kp / 4 words,
 * an even count since kp is a multiple of 8), w the first of their weight streams. */
static KWS_NOINLINE void conv_leftover_channels(const kws_conv2d_t *p, int c, const uint32_t *x,
                                                const uint32_t *end, const uint32_t *w, int8_t *out) {
    const kws_channel_q_t *const q = p->channels + c;
    const int n = p->out_c - c;
    const int32_t zp = p->output_zp, lo = p->act_min, hi = p->act_max;
    if (n == 1) { /* nothing to share */
        int32_t a0 = q->bias;
        do {
            uint32_t v = x[0];
            a0 = kws_smlad(w[0], kws_sxtb16(v), a0);
            a0 = kws_smlad(w[1], kws_sxtb16_ror8(v), a0);
            v = x[1];
            a0 = kws_smlad(w[2], kws_sxtb16(v), a0);
            a0 = kws_smlad(w[3], kws_sxtb16_ror8(v), a0);
            x += 2;
            w += 4;
        } while (x < end);
        out[0] = REQUANT(a0, q[0]);
        return;
    }
    int32_t acc[3];
    for (int i = 0; i < n; ++i) acc[i] = q[i].bias;
    if (n == 3)
        conv_dot3(x, end, w, p->k_padded >> 1, acc);
    else
        conv_dot2(x, end, w, p->k_padded >> 1, acc);
    for (int i = 0; i < n; ++i) out[i] = REQUANT(acc[i], q[i]);
}

void kws_conv2d_s8(const kws_conv2d_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    const int in_c = p->in_c, out_c = p->out_c;
    const int row_len = p->k_w * in_c;
    const int k = p->k_h * row_len, kp = p->k_padded; /* kp: multiple of 8, >= k */
    const int blocks = out_c >> 2;
    int8_t *patch = scratch; /* 4-byte aligned (arena offsets are), read back as words */
    const uint32_t *const patch_words = (const uint32_t *)(void *)scratch;
    const int8_t *src = in;
    int src_row = p->in_w * in_c;
    if (p->padded_h) {
        src = pad_input(p, in, scratch + kp);
        src_row = p->padded_w * in_c;
    }
    for (int i = k; i < kp; ++i) patch[i] = 0;
    const int step_y = p->stride_h * src_row, step_x = p->stride_w * in_c;
    const int32_t zp = p->output_zp, lo = p->act_min, hi = p->act_max;

    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ++ox) {
            gather_patch(patch, src + oy * step_y + ox * step_x, p->k_h, row_len, src_row);
            const uint32_t *const patch_end = patch_words + (kp >> 2);
            const uint32_t *w = p->weights;
            int c = 0;
            for (int b = 0; b < blocks; ++b, c += 4) {
                const kws_channel_q_t *q = p->channels + c;
                int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
                const uint32_t *x = patch_words;
                do {
                    uint32_t v = x[0];
                    uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
                    a0 = kws_smlad(w[0], even, a0);
                    a0 = kws_smlad(w[1], odd, a0);
                    a1 = kws_smlad(w[2], even, a1);
                    a1 = kws_smlad(w[3], odd, a1);
                    a2 = kws_smlad(w[4], even, a2);
                    a2 = kws_smlad(w[5], odd, a2);
                    a3 = kws_smlad(w[6], even, a3);
                    a3 = kws_smlad(w[7], odd, a3);
                    v = x[1];
                    even = kws_sxtb16(v);
                    odd = kws_sxtb16_ror8(v);
                    a0 = kws_smlad(w[8], even, a0);
                    a0 = kws_smlad(w[9], odd, a0);
                    a1 = kws_smlad(w[10], even, a1);
                    a1 = kws_smlad(w[11], odd, a1);
                    a2 = kws_smlad(w[12], even, a2);
                    a2 = kws_smlad(w[13], odd, a2);
                    a3 = kws_smlad(w[14], even, a3);
                    a3 = kws_smlad(w[15], odd, a3);
                    x += 2;
                    w += 16;
                } while (x < patch_end);
                out[c] = REQUANT(a0, q[0]);
                out[c + 1] = REQUANT(a1, q[1]);
                out[c + 2] = REQUANT(a2, q[2]);
                out[c + 3] = REQUANT(a3, q[3]);
            }
            if (c < out_c) conv_leftover_channels(p, c, patch_words, patch_end, w, out + c);
            out += out_c;
        }
    }
}
