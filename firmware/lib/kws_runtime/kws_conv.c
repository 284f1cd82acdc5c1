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
 * per channel two LDR of pre-interleaved int16 weight pairs + two SMLAD.
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

void kws_conv2d_s8(const kws_conv2d_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    const int in_c = p->in_c, out_c = p->out_c;
    const int row_len = p->k_w * in_c;
    const int k = p->k_h * row_len, kp = p->k_padded; /* kp: multiple of 8, >= k */
    const int blocks = out_c >> 2;
    int8_t *patch = scratch;
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
            const int8_t *const patch_end = patch + kp;
            const int16_t *w = p->weights;
            int c = 0;
            for (int b = 0; b < blocks; ++b, c += 4) {
                int32_t a0 = p->bias[c], a1 = p->bias[c + 1], a2 = p->bias[c + 2], a3 = p->bias[c + 3];
                const int8_t *x = patch;
                do {
                    uint32_t v = kws_load32(x);
                    uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
                    a0 = kws_smlad(kws_load32(w + 0), even, a0);
                    a0 = kws_smlad(kws_load32(w + 2), odd, a0);
                    a1 = kws_smlad(kws_load32(w + 4), even, a1);
                    a1 = kws_smlad(kws_load32(w + 6), odd, a1);
                    a2 = kws_smlad(kws_load32(w + 8), even, a2);
                    a2 = kws_smlad(kws_load32(w + 10), odd, a2);
                    a3 = kws_smlad(kws_load32(w + 12), even, a3);
                    a3 = kws_smlad(kws_load32(w + 14), odd, a3);
                    v = kws_load32(x + 4);
                    even = kws_sxtb16(v);
                    odd = kws_sxtb16_ror8(v);
                    a0 = kws_smlad(kws_load32(w + 16), even, a0);
                    a0 = kws_smlad(kws_load32(w + 18), odd, a0);
                    a1 = kws_smlad(kws_load32(w + 20), even, a1);
                    a1 = kws_smlad(kws_load32(w + 22), odd, a1);
                    a2 = kws_smlad(kws_load32(w + 24), even, a2);
                    a2 = kws_smlad(kws_load32(w + 26), odd, a2);
                    a3 = kws_smlad(kws_load32(w + 28), even, a3);
                    a3 = kws_smlad(kws_load32(w + 30), odd, a3);
                    x += 8;
                    w += 32;
                } while (x < patch_end);
                out[c] = kws_requant(a0, p->multiplier[c], p->shift[c], zp, lo, hi);
                out[c + 1] = kws_requant(a1, p->multiplier[c + 1], p->shift[c + 1], zp, lo, hi);
                out[c + 2] = kws_requant(a2, p->multiplier[c + 2], p->shift[c + 2], zp, lo, hi);
                out[c + 3] = kws_requant(a3, p->multiplier[c + 3], p->shift[c + 3], zp, lo, hi);
            }
            for (; c < out_c; ++c) {
                int32_t a = p->bias[c];
                for (const int8_t *x = patch; x < patch_end; x += 4, w += 4) {
                    const uint32_t v = kws_load32(x);
                    a = kws_smlad(kws_load32(w + 0), kws_sxtb16(v), a);
                    a = kws_smlad(kws_load32(w + 2), kws_sxtb16_ror8(v), a);
                }
                out[c] = kws_requant(a, p->multiplier[c], p->shift[c], zp, lo, hi);
            }
            out += out_c;
        }
    }
}
