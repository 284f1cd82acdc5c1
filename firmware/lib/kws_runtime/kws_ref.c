/* Reference backend (--backend ref): CONV_2D and FULLY_CONNECTED written like TFLite Micro's
 * reference kernels (reference_integer_ops::ConvPerChannel, FullyConnected/FullyConnectedPerChannel):
 * plain nested loops over the .tflite's own weight layout, a bounds check per tap, the input offset
 * added to every input value and MultiplyByQuantizedMultiplier per output.
 *
 * Why: the paper deployed TFLM's reference kernels. The same generator emits either these calls or
 * the fast AOT kernels, so the speedup of `aot` over `ref` is measured on the same board, the same
 * inputs and the same firmware, and both are bit-exact with TFLM (tests/test_codegen_exact.py).
 * DEPTHWISE_CONV_2D and SOFTMAX are shared with the aot backend; they are reference-style already.
 */
#include "kws_arith.h"
#include "kws_runtime.h"

void kws_ref_conv2d_s8(const kws_ref_conv2d_t *p, const int8_t *in, int8_t *out) {
    const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int out_c = p->out_c, k_h = p->k_h, k_w = p->k_w;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int in_y0 = oy * p->stride_h - p->pad_top;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int in_x0 = ox * p->stride_w - p->pad_left;
            for (int oc = 0; oc < out_c; ++oc) {
                int32_t acc = 0;
                for (int ky = 0; ky < k_h; ++ky) {
                    const int iy = in_y0 + ky;
                    for (int kx = 0; kx < k_w; ++kx) {
                        const int ix = in_x0 + kx;
                        if (ix < 0 || ix >= in_w || iy < 0 || iy >= in_h) continue;
                        for (int ic = 0; ic < in_c; ++ic) {
                            const int32_t xv = in[(iy * in_w + ix) * in_c + ic];
                            const int32_t wv = p->weights[((oc * k_h + ky) * k_w + kx) * in_c + ic];
                            acc += wv * (xv + p->input_offset);
                        }
                    }
                }
                acc += p->bias[oc];
                out[(oy * p->out_w + ox) * out_c + oc] =
                    kws_requant(acc, p->multiplier[oc], p->shift[oc], p->output_zp, p->act_min, p->act_max);
            }
        }
    }
}

void kws_ref_fc_s8(const kws_ref_fc_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth, units = p->units;
    for (int b = 0; b < p->batches; ++b) {
        for (int u = 0; u < units; ++u) {
            int32_t acc = 0;
            for (int d = 0; d < depth; ++d) {
                const int32_t xv = in[b * depth + d];
                const int32_t wv = p->weights[u * depth + d];
                acc += wv * (xv + p->input_offset);
            }
            acc += p->bias[u];
            const int q = p->per_channel ? u : 0;
            out[b * units + u] = kws_requant(acc, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
        }
    }
}
