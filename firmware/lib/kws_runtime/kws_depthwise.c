/* DEPTHWISE_CONV_2D int8, per-channel: the loop structure of TFLite's
 * reference_integer_ops::DepthwiseConvPerChannel, bounds checks included, so padding, stride,
 * dilation and depth multiplier all behave exactly as the reference. Our exports use CONV_2D;
 * this kernel exists for models that the converter lowers to depthwise (1-channel inputs with
 * older converters, DS-CNN), correctness first.
 */
#include "kws_arith.h"
#include "kws_runtime.h"

void kws_depthwise_s8(const kws_depthwise_t *p, const int8_t *in, int8_t *out) {
    const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_c = p->out_c;
    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int y0 = oy * p->stride_h - p->pad_top;
            const int x0 = ox * p->stride_w - p->pad_left;
            for (int ic = 0; ic < in_c; ++ic) {
                for (int m = 0; m < p->depth_multiplier; ++m) {
                    const int oc = m + ic * p->depth_multiplier;
                    int32_t acc = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = y0 + p->dilation_h * ky;
                        if (iy < 0 || iy >= in_h) continue;
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int ix = x0 + p->dilation_w * kx;
                            if (ix < 0 || ix >= in_w) continue;
                            const int32_t xv = in[(iy * in_w + ix) * in_c + ic];
                            const int32_t wv = p->weights[(ky * p->k_w + kx) * out_c + oc];
                            acc += wv * (xv + p->input_offset);
                        }
                    }
                    acc += p->bias[oc];
                    out[(oy * p->out_w + ox) * out_c + oc] =
                        kws_requant(acc, p->multiplier[oc], p->shift[oc], p->output_zp, p->act_min, p->act_max);
                }
            }
        }
    }
}
