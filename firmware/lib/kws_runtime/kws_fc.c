/* FULLY_CONNECTED int8: TFLite's reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel arithmetic. The input offset is folded into the bias at generation
 * time (bias + input_offset * sum(row)), weights have zero point 0, so the loop is a plain int8
 * dot product: one input word expanded once (SXTB16) feeds four weight rows.
 */
#include "kws_arith.h"
#include "kws_runtime.h"

#define KWS_FC_DOT_STEP(acc, wp)                                   \
    do {                                                           \
        const uint32_t wv = kws_load32(wp);                        \
        acc = kws_smlad(kws_sxtb16(wv), even, acc);                \
        acc = kws_smlad(kws_sxtb16_ror8(wv), odd, acc);            \
        wp += 4;                                                   \
    } while (0)

void kws_fc_s8(const kws_fc_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth, units = p->units;
    const int groups = depth >> 2, tail = depth & 3;
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        int u = 0;
        for (; u + 4 <= units; u += 4) {
            const int8_t *w0 = p->weights + (int32_t)u * depth;
            const int8_t *w1 = w0 + depth, *w2 = w1 + depth, *w3 = w2 + depth;
            int32_t a0 = p->bias[u], a1 = p->bias[u + 1], a2 = p->bias[u + 2], a3 = p->bias[u + 3];
            const int8_t *x = in;
            for (int g = 0; g < groups; ++g, x += 4) {
                const uint32_t v = kws_load32(x);
                const uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
                KWS_FC_DOT_STEP(a0, w0);
                KWS_FC_DOT_STEP(a1, w1);
                KWS_FC_DOT_STEP(a2, w2);
                KWS_FC_DOT_STEP(a3, w3);
            }
            for (int t = 0; t < tail; ++t) {
                const int32_t xv = x[t];
                a0 += xv * w0[t];
                a1 += xv * w1[t];
                a2 += xv * w2[t];
                a3 += xv * w3[t];
            }
            const int q = p->per_channel ? u : 0, s = p->per_channel ? 1 : 0;
            out[u] = kws_requant(a0, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
            out[u + 1] = kws_requant(a1, p->multiplier[q + s], p->shift[q + s], p->output_zp, p->act_min, p->act_max);
            out[u + 2] = kws_requant(a2, p->multiplier[q + 2 * s], p->shift[q + 2 * s], p->output_zp, p->act_min, p->act_max);
            out[u + 3] = kws_requant(a3, p->multiplier[q + 3 * s], p->shift[q + 3 * s], p->output_zp, p->act_min, p->act_max);
        }
        /* Leftover units (units % 4): two at a time share the expanded input word, then one. */
        for (; u + 2 <= units; u += 2) {
            const int8_t *w0 = p->weights + (int32_t)u * depth;
            const int8_t *w1 = w0 + depth;
            int32_t a0 = p->bias[u], a1 = p->bias[u + 1];
            const int8_t *x = in;
            for (int g = 0; g < groups; ++g, x += 4) {
                const uint32_t v = kws_load32(x);
                const uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
                KWS_FC_DOT_STEP(a0, w0);
                KWS_FC_DOT_STEP(a1, w1);
            }
            for (int t = 0; t < tail; ++t) {
                const int32_t xv = x[t];
                a0 += xv * w0[t];
                a1 += xv * w1[t];
            }
            const int q = p->per_channel ? u : 0, s = p->per_channel ? 1 : 0;
            out[u] = kws_requant(a0, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
            out[u + 1] = kws_requant(a1, p->multiplier[q + s], p->shift[q + s], p->output_zp, p->act_min, p->act_max);
        }
        for (; u < units; ++u) {
            const int8_t *w0 = p->weights + (int32_t)u * depth;
            int32_t a0 = p->bias[u];
            const int8_t *x = in;
            for (int g = 0; g < groups; ++g, x += 4) {
                const uint32_t v = kws_load32(x);
                const uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
                KWS_FC_DOT_STEP(a0, w0);
            }
            for (int t = 0; t < tail; ++t) a0 += (int32_t)x[t] * w0[t];
            const int q = p->per_channel ? u : 0;
            out[u] = kws_requant(a0, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
        }
    }
}
