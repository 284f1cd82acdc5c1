/* FULLY_CONNECTED int8: TFLite's reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel arithmetic. The input offset is folded into the bias at generation
 * time (bias + input_offset * sum(row)), weights have zero point 0, so the loop is a plain int8
 * dot product: one input word expanded once (SXTB16) feeds four weight rows, whose words codegen
 * interleaves (fc_weight_layout) so one pointer walks them.
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

#if KWS_USE_DSP && defined(__thumb2__)
/* acc[0..3] += the 4 interleaved rows (w: per input word, one word per unit) . x, over `groups` words.
 * One LDM fetches the 4 units' weight words, the input word is sign-extended once for all of them
 * (the C loop below is the reference; GCC does not form the LDM and spills). */
void kws_fc_dot4_asm(const int8_t *x, const int8_t *w, int32_t *acc, int groups);
__asm__(".pushsection .text.kws_fc_dot4_asm,\"ax\",%progbits\n"
        ".syntax unified\n.thumb\n.p2align 2\n.global kws_fc_dot4_asm\n.thumb_func\n"
        ".type kws_fc_dot4_asm, %function\n"
        "kws_fc_dot4_asm:\n"
        "    push {r2, r4-r11, lr}\n"
        "    add lr, r0, r3, lsl #2\n"
        "    ldm r2, {r2-r5}\n"
        "    cmp r0, lr\n"
        "    beq 2f\n"
        "1:  ldr r7, [r0], #4\n"
        "    ldm r1!, {r8-r11}\n"
        "    sxtb16 r6, r7\n"
        "    sxtb16 r7, r7, ror #8\n"
        "    sxtb16 r12, r8\n"
        "    smlad r2, r12, r6, r2\n"
        "    sxtb16 r8, r8, ror #8\n"
        "    smlad r2, r8, r7, r2\n"
        "    sxtb16 r12, r9\n"
        "    smlad r3, r12, r6, r3\n"
        "    sxtb16 r9, r9, ror #8\n"
        "    smlad r3, r9, r7, r3\n"
        "    sxtb16 r12, r10\n"
        "    smlad r4, r12, r6, r4\n"
        "    sxtb16 r10, r10, ror #8\n"
        "    smlad r4, r10, r7, r4\n"
        "    sxtb16 r12, r11\n"
        "    smlad r5, r12, r6, r5\n"
        "    sxtb16 r11, r11, ror #8\n"
        "    smlad r5, r11, r7, r5\n"
        "    cmp r0, lr\n"
        "    bne 1b\n"
        "2:  ldr r12, [sp]\n"
        "    stm r12, {r2-r5}\n"
        "    add sp, sp, #4\n"
        "    pop {r4-r11, pc}\n"
        ".size kws_fc_dot4_asm, .-kws_fc_dot4_asm\n"
        ".popsection\n");
#endif

/* acc[0..3] += the 4 interleaved rows . x over `groups` input words. */
void kws_fc_dot4(const int8_t *x, const int8_t *w, int32_t *acc, int groups) {
#if KWS_USE_DSP && defined(__thumb2__)
    kws_fc_dot4_asm(x, w, acc, groups);
#else
    for (int g = 0; g < groups; ++g, x += 4) {
        const uint32_t v = kws_load32(x);
        const uint32_t even = kws_sxtb16(v), odd = kws_sxtb16_ror8(v);
        for (int i = 0; i < 4; ++i) KWS_FC_DOT_STEP(acc[i], w);
    }
#endif
}

void kws_fc_s8(const kws_fc_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth, units = p->units;
    const int groups = depth >> 2, tail = depth & 3;
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        int u = 0;
        /* Blocks of 4 units, interleaved by codegen.fc_weight_layout: per input word, the 4 units'
         * words, then per tail input the 4 units' bytes. */
        const int8_t *w = p->weights;
        for (; u + 4 <= units; u += 4) {
            int32_t acc[4] = {p->bias[u], p->bias[u + 1], p->bias[u + 2], p->bias[u + 3]};
            const int8_t *x = in;
            kws_fc_dot4(x, w, acc, groups);
            x += 4 * groups;
            w += 16 * groups;
            for (int t = 0; t < tail; ++t, w += 4)
                for (int i = 0; i < 4; ++i) acc[i] += (int32_t)x[t] * w[i];
            const int q = p->per_channel ? u : 0, s = p->per_channel ? 1 : 0;
            for (int i = 0; i < 4; ++i)
                out[u + i] = kws_requant(acc[i], p->multiplier[q + i * s], p->shift[q + i * s], p->output_zp,
                                         p->act_min, p->act_max);
        }
        /* Leftover units (units % 4): two at a time share the expanded input word, then one. */
        for (; u + 2 <= units; u += 2) {
            const int8_t *w0 = p->weights + (int32_t)u * depth;  /* row-major after the blocks */
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
