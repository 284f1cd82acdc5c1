/* Packed sub-byte weights (2, 4 or 6 bits per weight, a table of values per output channel).
 *
 * Why: a b-bit model exported to int8 still has at most 2^b distinct int8 values per channel, so
 * storing b-bit codes plus a small table per channel shrinks the model's flash by ~8/b while
 * every weight decodes to exactly the int8 the .tflite holds (bit-exact by construction). 4 codes
 * always fill b/2 whole bytes, so decoding goes word by word. The FC decodes a chunk of 4 rows at
 * a time into the interleaved layout of kws_fc_s8 and reuses its dot product; the fast CONV_2D
 * decodes its (small) weights once per inference into scratch RAM (kws_conv_fast.c).
 */
#include "kws_arith.h"
#include "kws_runtime.h"

/* Byte-indexed tables for one unit, built once per block per inference (RAM, 1 KB for 2 bits,
 * 512 B for 4 bits) so decoding a weight word is one or two loads: 2 bits, a code byte is a whole
 * word of 4 weights; 4 bits, a code byte is the halfword of 2 weights. */
static void build_byte_table(const int8_t *tab, int bits, void *out) {
    if (bits == 2) {
        uint32_t *t = (uint32_t *)out;
        for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) {
                const uint32_t ab = (uint32_t)(uint8_t)tab[a] << 24 | (uint32_t)(uint8_t)tab[b] << 16;
                for (int c = 0; c < 4; ++c) {
                    const uint32_t abc = ab | (uint32_t)(uint8_t)tab[c] << 8;
                    for (int d = 0; d < 4; ++d) *t++ = abc | (uint8_t)tab[d]; /* index a b c d, LSB = d */
                }
            }
    } else { /* 4 bits */
        uint16_t *t = (uint16_t *)out;
        for (int hi = 0; hi < 16; ++hi) {
            const uint16_t h = (uint16_t)((uint8_t)tab[hi] << 8);
            for (int lo = 0; lo < 16; ++lo) *t++ = (uint16_t)(h | (uint8_t)tab[lo]);
        }
    }
}

/* n words of one row into dst (stride 4 words: the interleaved layout) through a byte table. */
static void decode_row_2(const uint8_t *src, const uint32_t *t, int n, uint32_t *dst) {
    for (int g = 0; g < n; ++g, dst += 4) *dst = t[*src++];
}

static void decode_row_4(const uint8_t *src, int stride, const uint16_t *t, int n, uint32_t *dst) {
    for (int g = 0; g < n; ++g, src += stride, dst += 4) *dst = (uint32_t)t[src[0]] | (uint32_t)t[src[1]] << 16;
}

#if KWS_USE_DSP && defined(__thumb2__)
/* 4 bits, a full block of 4 units: codes interleaved per input word (unit 0's 2 bytes, unit 1's,
 * ...), decoded through the 4 halfword tables (512 B apart at tabs) straight into SXTB16 + SMLAD,
 * no buffer: kws_fc_dot4_asm's loop with the weight words built from LDRD'd codes. */
void kws_fc_dot4_q4(const int8_t *x, const uint8_t *codes, int32_t *acc, int groups, const uint16_t *tabs);
#define KWS_Q4_UNIT(creg, lo, hi, off, a)                 \
    "    ubfx r12, " creg ", #" lo ", #8\n"                 \
    "    add r12, r12, #" off "\n"                          \
    "    ldrh r12, [r6, r12, lsl #1]\n"                     \
    "    ubfx lr, " creg ", #" hi ", #8\n"                  \
    "    add lr, lr, #" off "\n"                            \
    "    ldrh lr, [r6, lr, lsl #1]\n"                       \
    "    orr r12, r12, lr, lsl #16\n"                       \
    "    sxtb16 lr, r12\n"                                  \
    "    smlad " a ", lr, r10, " a "\n"                     \
    "    sxtb16 r12, r12, ror #8\n"                         \
    "    smlad " a ", r12, r11, " a "\n"
__asm__(".pushsection .text.kws_fc_dot4_q4,\"ax\",%progbits\n"
        ".syntax unified\n.thumb\n.p2align 2\n.global kws_fc_dot4_q4\n.thumb_func\n"
        ".type kws_fc_dot4_q4, %function\n"
        "kws_fc_dot4_q4:\n"
        "    push {r2, r4-r11, lr}\n"
        "    ldr r6, [sp, #40]\n"
        "    add r7, r0, r3, lsl #2\n"
        "    ldm r2, {r2-r5}\n"
        "    cmp r0, r7\n"
        "    beq 2f\n"
        "1:  ldr r12, [r0], #4\n"
        "    sxtb16 r10, r12\n"
        "    sxtb16 r11, r12, ror #8\n"
        "    ldrd r8, r9, [r1], #8\n"
        "    uxtb r12, r8\n"
        "    ldrh r12, [r6, r12, lsl #1]\n"
        "    ubfx lr, r8, #8, #8\n"
        "    ldrh lr, [r6, lr, lsl #1]\n"
        "    orr r12, r12, lr, lsl #16\n"
        "    sxtb16 lr, r12\n"
        "    smlad r2, lr, r10, r2\n"
        "    sxtb16 r12, r12, ror #8\n"
        "    smlad r2, r12, r11, r2\n"
        KWS_Q4_UNIT("r8", "16", "24", "256", "r3")
        KWS_Q4_UNIT("r9", "0", "8", "512", "r4")
        KWS_Q4_UNIT("r9", "16", "24", "768", "r5")
        "    cmp r0, r7\n"
        "    bne 1b\n"
        "2:  ldr r12, [sp]\n"
        "    stm r12, {r2-r5}\n"
        "    add sp, sp, #4\n"
        "    pop {r4-r11, pc}\n"
        ".size kws_fc_dot4_q4, .-kws_fc_dot4_q4\n"
        ".popsection\n");
#endif

/* 6 bits: 3 code bytes = 4 weights, constant shifts (the generic decode_row shifts by a variable). */
static void decode_row_6(const uint8_t *src, const int8_t *tab, int n, uint32_t *dst) {
    for (int g = 0; g < n; ++g, src += 3, dst += 4) {
        const uint32_t v = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16;
        *dst = (uint32_t)(uint8_t)tab[v & 63] | (uint32_t)(uint8_t)tab[(v >> 6) & 63] << 8 |
               (uint32_t)(uint8_t)tab[(v >> 12) & 63] << 16 | (uint32_t)(uint8_t)tab[v >> 18] << 24;
    }
}

void kws_fc_packed_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    const int depth = p->depth, units = p->units, bits = p->bits;
    const int groups = depth >> 2, row_bytes = groups * (bits >> 1), n_tab = 1 << bits;
    uint32_t *buf = (uint32_t *)(void *)scratch; /* KWS_FC_CHUNK groups x 4 units, interleaved */
    uint32_t *byte_tabs = buf + 4 * KWS_FC_CHUNK; /* 4 x 256 words (2 bits) or halfwords (4 bits) */
    const int tab_words = bits == 2 ? 256 : 128;  /* one unit's table, in words */
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        for (int u = 0; u < units; u += 4) {
            int32_t acc[4];
            for (int i = 0; i < 4; ++i) acc[i] = u + i < units ? p->bias[u + i] : 0;
            if (bits != 6)
                for (int i = 0; i < 4 && u + i < units; ++i)
                    build_byte_table(p->tables + (u + i) * n_tab, bits, byte_tabs + i * tab_words);
            /* 4 bits: full blocks are interleaved per input word (codegen.fc_packed_layout) */
            const int q4_block = bits == 4 && u + 4 <= units;
#if KWS_USE_DSP && defined(__thumb2__)
            if (q4_block) {
                kws_fc_dot4_q4(in, p->packed + u * row_bytes, acc, groups, (const uint16_t *)(const void *)byte_tabs);
                goto requant;
            }
#endif
            for (int g0 = 0; g0 < groups; g0 += KWS_FC_CHUNK) {
                const int n = groups - g0 < KWS_FC_CHUNK ? groups - g0 : KWS_FC_CHUNK;
                for (int i = 0; i < 4; ++i) {
                    const uint8_t *src = p->packed + (u + i) * row_bytes + g0 * (bits >> 1);
                    if (u + i >= units) { /* units % 4 padding: zero weights, never stored */
                        for (int g = 0; g < n; ++g) buf[4 * g + i] = 0;
                    } else if (bits == 2) {
                        decode_row_2(src, byte_tabs + i * tab_words, n, buf + i);
                    } else if (bits == 4) {
                        const uint8_t *s4 = q4_block ? p->packed + u * row_bytes + g0 * 8 + 2 * i : src;
                        decode_row_4(s4, q4_block ? 8 : 2, (const uint16_t *)(const void *)(byte_tabs + i * tab_words),
                                     n, buf + i);
                    } else {
                        decode_row_6(src, p->tables + (u + i) * n_tab, n, buf + i);
                    }
                }
                kws_fc_dot4(in + 4 * g0, (const int8_t *)buf, acc, n);
            }
#if KWS_USE_DSP && defined(__thumb2__)
        requant:
#endif
            for (int i = 0; i < 4 && u + i < units; ++i) {
                const int q = p->per_channel ? u + i : 0;
                out[u + i] = kws_requant(acc[i], p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
            }
        }
    }
}

/* One int16 pair word of the fast CONV_2D from two codes and the channel's table (doubled if dbl). */
KWS_INLINE uint32_t conv_word(const int8_t *tab, uint32_t lo, uint32_t hi, int dbl) {
    return (uint32_t)(uint16_t)(int16_t)(tab[lo] * (1 << dbl)) | (uint32_t)(uint16_t)(int16_t)(tab[hi] * (1 << dbl)) << 16;
}

/* 4 codes (b / 2 bytes) are the words of two neighbouring channels c, c + 1 of a step (blocks have an
 * even channel count); `bits` is a constant in each call below, so the shifts are immediates. */
KWS_INLINE void conv_decode_bits(const kws_conv2d_fast_t *p, uint32_t *dst, int bits, int dbl) {
    const int n_tab = 1 << bits, steps = p->k_h * p->pairs, oc_pad = (p->out_c + 1) & ~1;
    const uint32_t m = (1u << bits) - 1;
    const uint8_t *src = p->packed;
    for (int c0 = 0; c0 < oc_pad; c0 += 4) {
        const int nch = oc_pad - c0 >= 4 ? 4 : 2;
        for (int s = 0; s < steps; ++s)
            for (int c = 0; c < nch; c += 2) {
                uint32_t v = src[0];
                if (bits >= 4) v |= (uint32_t)src[1] << 8;
                if (bits >= 6) v |= (uint32_t)src[2] << 16;
                src += bits >> 1;
                const int8_t *t0 = p->tables + (c0 + c) * n_tab, *t1 = t0 + n_tab;
                *dst++ = conv_word(t0, v & m, (v >> bits) & m, dbl);
                *dst++ = conv_word(t1, (v >> (2 * bits)) & m, (v >> (3 * bits)) & m, dbl);
            }
    }
}

/* The fast CONV_2D's weight words (int16 pairs, in kws_conv2d_fast_s8's read order) from codes in
 * the same order, once per inference. */
void kws_conv_fast_decode(const kws_conv2d_fast_t *p, uint32_t *dst) {
    const int dbl = p->short_q ? 1 : 0;
    if (p->bits == 2)
        conv_decode_bits(p, dst, 2, dbl);
    else if (p->bits == 4)
        conv_decode_bits(p, dst, 4, dbl);
    else
        conv_decode_bits(p, dst, 6, dbl);
}

/* Sparse FULLY_CONNECTED (unstructured-pruned weights): per unit, groups of 4 (position step, value)
 * pairs; steps are 4-bit (a zero-valued filler bridges gaps over 15, zero-valued entries with step 0
 * pad the last group), values int8. One word of 4 values is sign-extended with SXTB16 like the dense
 * kernel's, the 4 inputs are gathered into the matching lanes (x0, x2) / (x1, x3), two SMLADs. Zero
 * weights contribute nothing to TFLite's sum, so skipping them is exact. */
void kws_fc_sparse_s8(const kws_fc_sparse_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth, units = p->units;
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        const uint8_t *d = p->steps;
        const int8_t *w = p->values;
        for (int u = 0; u < units; ++u) {
            int32_t acc = p->bias[u];
            const int8_t *x = in;
            for (int g = p->groups[u]; g > 0; --g, d += 2, w += 4) {
                const uint32_t dd = (uint32_t)d[0] | (uint32_t)d[1] << 8;
                const int8_t *x0 = x + (dd & 15), *x1 = x0 + ((dd >> 4) & 15);
                const int8_t *x2 = x1 + ((dd >> 8) & 15), *x3 = x2 + (dd >> 12);
                x = x3;
                const uint32_t lo = ((uint32_t)(int32_t)*x0 & 0xFFFFu) | ((uint32_t)(int32_t)*x2 << 16);
                const uint32_t hi = ((uint32_t)(int32_t)*x1 & 0xFFFFu) | ((uint32_t)(int32_t)*x3 << 16);
                const uint32_t wv = kws_load32(w);
                acc = kws_smlad(kws_sxtb16(wv), lo, acc);
                acc = kws_smlad(kws_sxtb16_ror8(wv), hi, acc);
            }
            const int q = p->per_channel ? u : 0;
            out[u] = kws_requant(acc, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
        }
    }
}
