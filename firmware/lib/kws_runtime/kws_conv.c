/* CONV_2D int8, per-channel requantization: the arithmetic of TFLite's
 * reference_integer_ops::ConvPerChannel, rearranged so the inner loop is SXTB16 + SMLAD.
 *
 * Exactness: the reference sums w * (x + input_offset) over in-bounds taps only. We pad the input
 * with the input zero point (so those taps add w * 0) and sum w * x + input_offset * sum(w), the
 * latter folded into the bias at generation time; integer sums are order-independent, so the
 * accumulator equals the reference's before the same requantization.
 */
#include <string.h>

#include "kws_arith.h"
#include "kws_runtime.h"

/* Copy the input into the zero-point-filled scratch so no tap needs a bounds check. */
static const int8_t *pad_input(const kws_conv2d_t *p, const int8_t *in, int8_t *scratch) {
    const int c = p->in_c;
    memset(scratch, (int8_t)p->input_zp, (size_t)p->padded_h * p->padded_w * c);
    for (int iy = 0; iy < p->in_h; ++iy) {
        const int py = iy + p->pad_top;
        if (py >= p->padded_h) break;
        int n = p->in_w;
        if (p->pad_left + n > p->padded_w) n = p->padded_w - p->pad_left;
        memcpy(scratch + ((size_t)py * p->padded_w + p->pad_left) * c,
               in + (size_t)iy * p->in_w * c, (size_t)n * c);
    }
    return scratch;
}

void kws_conv2d_s8(const kws_conv2d_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    const int in_c = p->in_c, out_c = p->out_c;
    const int row_len = p->k_w * in_c;
    const int groups = row_len >> 2, tail = row_len & 3;
    const int blocks = out_c >> 2;
    const int8_t *src = in;
    int src_row = p->in_w * in_c;
    if (p->padded_h) {
        src = pad_input(p, in, scratch);
        src_row = p->padded_w * in_c;
    }
    const int step_y = p->stride_h * src_row, step_x = p->stride_w * in_c;

    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int8_t *base = src + oy * step_y + ox * step_x;
            const int16_t *w = p->weights;
            int c = 0;
            for (int b = 0; b < blocks; ++b, c += 4) {
                int32_t a0 = p->bias[c], a1 = p->bias[c + 1], a2 = p->bias[c + 2], a3 = p->bias[c + 3];
                const int8_t *row = base;
                for (int ky = 0; ky < p->k_h; ++ky, row += src_row) {
                    const int8_t *x = row;
                    for (int g = 0; g < groups; ++g, x += 4, w += 16) {
                        const uint32_t v = kws_load32(x);
                        const uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
                        a0 = kws_smlad(kws_load32(w + 0), even, a0);
                        a0 = kws_smlad(kws_load32(w + 2), odd, a0);
                        a1 = kws_smlad(kws_load32(w + 4), even, a1);
                        a1 = kws_smlad(kws_load32(w + 6), odd, a1);
                        a2 = kws_smlad(kws_load32(w + 8), even, a2);
                        a2 = kws_smlad(kws_load32(w + 10), odd, a2);
                        a3 = kws_smlad(kws_load32(w + 12), even, a3);
                        a3 = kws_smlad(kws_load32(w + 14), odd, a3);
                    }
                    for (int t = 0; t < tail; ++t, ++x, w += 4) {
                        const int32_t xv = *x;
                        a0 += xv * w[0];
                        a1 += xv * w[1];
                        a2 += xv * w[2];
                        a3 += xv * w[3];
                    }
                }
                out[c] = kws_requant(a0, p->multiplier[c], p->shift[c], p->output_zp, p->act_min, p->act_max);
                out[c + 1] = kws_requant(a1, p->multiplier[c + 1], p->shift[c + 1], p->output_zp, p->act_min, p->act_max);
                out[c + 2] = kws_requant(a2, p->multiplier[c + 2], p->shift[c + 2], p->output_zp, p->act_min, p->act_max);
                out[c + 3] = kws_requant(a3, p->multiplier[c + 3], p->shift[c + 3], p->output_zp, p->act_min, p->act_max);
            }
            for (; c < out_c; ++c) {
                int32_t a = p->bias[c];
                const int8_t *row = base;
                for (int ky = 0; ky < p->k_h; ++ky, row += src_row) {
                    const int8_t *x = row;
                    for (int g = 0; g < groups; ++g, x += 4, w += 4) {
                        const uint32_t v = kws_load32(x);
                        a = kws_smlad(kws_load32(w + 0), kws_sxtb16(v), a);
                        a = kws_smlad(kws_load32(w + 2), kws_sxtb16_ror8(v), a);
                    }
                    for (int t = 0; t < tail; ++t) a += (int32_t)x[t] * *w++;
                }
                out[c] = kws_requant(a, p->multiplier[c], p->shift[c], p->output_zp, p->act_min, p->act_max);
            }
            out += out_c;
        }
    }
}
