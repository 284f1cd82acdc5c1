/* Packed sub-byte weights (2, 4 or 6 bits per weight, a table of values per output channel).
 *
 * Why: a b-bit model exported to int8 still has at most 2^b distinct int8 values per channel, so
 * storing b-bit codes plus a small table per channel shrinks the model's flash by ~8/b while
 * every weight decodes to exactly the int8 the .tflite holds (bit-exact by construction).
 * FULLY_CONNECTED weights are each used once per inference, so decoding is part of every MAC and
 * each width gets the lookup that costs fewest instructions: 2 bits, a byte of 4 codes is one word
 * of 4 weights (chunks decoded into kws_fc_s8's layout); 4 bits, a byte of 2 codes is one SMLAD
 * operand (tables built per inference, unit pairs in hand-written assembly); 6 bits, one
 * SMLABB/SMLABT per weight straight from the int8 table. The fast CONV_2D decodes its (small)
 * weights once per inference into scratch RAM (kws_conv_fast.c).
 */
#include "kws_arith.h"
#include "kws_runtime.h"

/* 2 bits: a byte of 4 codes indexes a word of the 4 int8 weights (RAM, 1 KB per unit, built per
 * inference), so a weight word of kws_fc_s8's layout is one load. */
static void build_byte_table_2(const int8_t *tab, uint32_t *t) {
    for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
            const uint32_t ab = (uint32_t)(uint8_t)tab[a] << 24 | (uint32_t)(uint8_t)tab[b] << 16;
            for (int c = 0; c < 4; ++c) {
                const uint32_t abc = ab | (uint32_t)(uint8_t)tab[c] << 8;
                for (int d = 0; d < 4; ++d) *t++ = abc | (uint8_t)tab[d]; /* index a b c d, LSB = d */
            }
        }
}

/* 4 bits: a code byte (low nibble: the weight of input 4g or 4g+1, high nibble: of 4g+2 or 4g+3)
 * indexes the word (int16 w_lo | int16 w_hi << 16): an SMLAD operand against SXTB16 of the input
 * word, no unpacking (RAM, 1 KB per unit, built per inference). */
static void build_pair_table_4(const int8_t *tab, uint32_t *t) {
    for (int k = 0; k < 16; k += 4) { /* 4 low halves in registers, down the 16 rows of the table */
        const uint32_t l0 = (uint16_t)(int16_t)tab[k], l1 = (uint16_t)(int16_t)tab[k + 1];
        const uint32_t l2 = (uint16_t)(int16_t)tab[k + 2], l3 = (uint16_t)(int16_t)tab[k + 3];
        uint32_t *q = t + k;
        for (int hi = 0; hi < 16; ++hi, q += 16) {
            const uint32_t h = (uint32_t)(int32_t)tab[hi] << 16;
            q[0] = h | l0;
            q[1] = h | l1;
            q[2] = h | l2;
            q[3] = h | l3;
        }
    }
}

/* 2 bits: n words of one row into dst (stride 4 words: the interleaved layout of kws_fc_s8). */
static void decode_row_2(const uint8_t *src, const uint32_t *t, int n, uint32_t *dst) {
    for (int g = 0; g < n; ++g, dst += 4) *dst = t[*src++];
}

/* 4 bits, one unit: acc += row . x over `words` code words (each: bytes (x0,x2), (x1,x3) of input
 * word 2k, then of 2k + 1), the unit's words `stride` apart (2: a unit pair's interleaved stream). */
static int32_t fc_q4_row(const int8_t *x, const uint32_t *c, int stride, int words, const uint32_t *t, int32_t acc) {
    for (int k = 0; k < words; ++k, c += stride, x += 8) {
        const uint32_t cw = *c, xa = kws_load32(x), xb = kws_load32(x + 4);
        acc = kws_smlad(t[cw & 255u], kws_sxtb16(xa), acc);
        acc = kws_smlad(t[(cw >> 8) & 255u], kws_sxtb16_ror8(xa), acc);
        acc = kws_smlad(t[(cw >> 16) & 255u], kws_sxtb16(xb), acc);
        acc = kws_smlad(t[cw >> 24], kws_sxtb16_ror8(xb), acc);
    }
    return acc;
}

#if KWS_USE_DSP && defined(__thumb2__)
/* 4 bits, a unit pair: fc_q4_row for both units of the interleaved stream (unit 0's word, unit 1's,
 * ...) sharing each input word's SXTB16s; tabs: unit 0's 256-word table, then unit 1's.
 * 32 instructions per 16 MACs (the C above is the reference). */
void kws_fc_q4_dot2(const int8_t *x, const uint32_t *codes, int32_t *acc, int words, const uint32_t *tabs);
#define KWS_Q4_BYTES(c, t, a, r1, r2, e, o)            \
    "    uxtb r12, " c r1 "\n"                           \
    "    uxtb lr, " c r2 "\n"                            \
    "    ldr r12, [" t ", r12, lsl #2]\n"                \
    "    ldr lr, [" t ", lr, lsl #2]\n"                  \
    "    smlad " a ", r12, " e ", " a "\n"               \
    "    smlad " a ", lr, " o ", " a "\n"
__asm__(".pushsection .text.kws_fc_q4_dot2,\"ax\",%progbits\n"
        ".syntax unified\n.thumb\n.p2align 2\n.global kws_fc_q4_dot2\n.thumb_func\n"
        ".type kws_fc_q4_dot2, %function\n"
        "kws_fc_q4_dot2:\n"
        "    push {r2, r4-r11, lr}\n"
        "    ldr r8, [sp, #40]\n"
        "    add r9, r8, #1024\n"
        "    add r10, r0, r3, lsl #3\n"
        "    ldm r2, {r2, r3}\n"
        "    cmp r0, r10\n"
        "    beq 2f\n"
        "1:  ldrd r4, r5, [r0], #8\n"
        "    ldrd r6, r7, [r1], #8\n"
        "    sxtb16 r11, r4\n"
        "    sxtb16 r4, r4, ror #8\n"
        KWS_Q4_BYTES("r6", "r8", "r2", "", ", ror #8", "r11", "r4")
        KWS_Q4_BYTES("r7", "r9", "r3", "", ", ror #8", "r11", "r4")
        "    sxtb16 r11, r5\n"
        "    sxtb16 r5, r5, ror #8\n"
        KWS_Q4_BYTES("r6", "r8", "r2", ", ror #16", ", ror #24", "r11", "r5")
        KWS_Q4_BYTES("r7", "r9", "r3", ", ror #16", ", ror #24", "r11", "r5")
        "    cmp r0, r10\n"
        "    bne 1b\n"
        "2:  ldr r12, [sp]\n"
        "    stm r12, {r2, r3}\n"
        "    add sp, sp, #4\n"
        "    pop {r4-r11, pc}\n"
        ".size kws_fc_q4_dot2, .-kws_fc_q4_dot2\n"
        ".popsection\n");
#endif

KWS_INLINE int8_t fc_requant(const kws_fc_packed_t *p, int u, int32_t acc) {
    const int q = p->per_channel ? u : 0;
    return kws_requant(acc, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
}

/* 4 bits (layout: codegen.fc_packed_layout): unit pairs through kws_fc_q4_dot2, a last odd unit alone. */
void kws_fc_packed4_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    const int depth = p->depth, units = p->units, groups = depth >> 2;
    const int words = groups >> 1, row_words = (groups + 1) >> 1;
    uint32_t *tabs = (uint32_t *)(void *)scratch; /* 2 x 256 words */
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        const uint32_t *c = (const uint32_t *)(const void *)p->packed;
        for (int u = 0; u < units; u += 2) {
            const int n = units - u >= 2 ? 2 : 1;
            int32_t acc[2] = {p->bias[u], n == 2 ? p->bias[u + 1] : 0};
            for (int i = 0; i < n; ++i) build_pair_table_4(p->tables + (u + i) * 16, tabs + 256 * i);
            if (n == 2) {
#if KWS_USE_DSP && defined(__thumb2__)
                kws_fc_q4_dot2(in, c, acc, words, tabs);
#else
                acc[0] = fc_q4_row(in, c, 2, words, tabs, acc[0]);
                acc[1] = fc_q4_row(in, c + 1, 2, words, tabs + 256, acc[1]);
#endif
            } else {
                acc[0] = fc_q4_row(in, c, 1, words, tabs, acc[0]);
            }
            if (groups & 1) { /* the last input word: bytes 0 and 1 of each unit's last word */
                const uint32_t xv = kws_load32(in + 8 * words);
                for (int i = 0; i < n; ++i) {
                    const uint32_t cw = c[n * words + i];
                    acc[i] = kws_smlad(tabs[256 * i + (cw & 255u)], kws_sxtb16(xv), acc[i]);
                    acc[i] = kws_smlad(tabs[256 * i + ((cw >> 8) & 255u)], kws_sxtb16_ror8(xv), acc[i]);
                }
            }
            c += n * row_words;
            for (int i = 0; i < n; ++i) out[u + i] = fc_requant(p, u + i, acc[i]);
        }
    }
}

/* 6 bits: 4 weights (table values, sign-extended) times one input word, one SMLABB/SMLABT each. */
KWS_INLINE int32_t mac4_6(int32_t w0, int32_t w1, int32_t w2, int32_t w3, const int8_t *x, int32_t acc) {
    const uint32_t xv = kws_load32(x), e = kws_sxtb16(xv), o = kws_sxtb16_ror8(xv); /* (x0, x2), (x1, x3) */
    acc = kws_smlabb((uint32_t)w0, e, acc);
    acc = kws_smlabb((uint32_t)w1, o, acc);
    acc = kws_smlabt((uint32_t)w2, e, acc);
    return kws_smlabt((uint32_t)w3, o, acc);
}

#if KWS_USE_DSP && defined(__thumb2__)
/* 6 bits, one unit: acc + the row's first 16 * quads weights . x (kws_fc_packed6_s8's quad loop: a code
 * extracted, its weight loaded with LDRSB, one SMLABB/SMLABT, 67 instructions per 16 MACs). */
int32_t kws_fc_q6_dot1(const int8_t *x, const uint32_t *codes, int32_t acc, int quads, const int8_t *t);
#define KWS_Q6_MAC2(ext0, ext1, m0, m1)   \
    "    " ext0 "\n"                       \
    "    " ext1 "\n"                       \
    "    ldrsb r11, [r4, r11]\n"           \
    "    ldrsb r12, [r4, r12]\n"           \
    "    " m0 " r2, r11, r8, r2\n"         \
    "    " m1 " r2, r12, r9, r2\n"
#define KWS_Q6_WORD(w)                                                        \
    "    ldr r10, [r0], #4\n"                                                 \
    "    sxtb16 r8, r10\n"                                                    \
    "    sxtb16 r9, r10, ror #8\n"                                            \
    KWS_Q6_MAC2("and r11, " w ", #63", "ubfx r12, " w ", #6, #6", "smlabb", "smlabb") \
    KWS_Q6_MAC2("ubfx r11, " w ", #12, #6", "ubfx r12, " w ", #18, #6", "smlabt", "smlabt")
__asm__(".pushsection .text.kws_fc_q6_dot1,\"ax\",%progbits\n"
        ".syntax unified\n.thumb\n.p2align 2\n.global kws_fc_q6_dot1\n.thumb_func\n"
        ".type kws_fc_q6_dot1, %function\n"
        "kws_fc_q6_dot1:\n"
        "    push {r4-r11, lr}\n"
        "    ldr r4, [sp, #36]\n"
        "    add r3, r0, r3, lsl #4\n"
        "    cmp r0, r3\n"
        "    beq 2f\n"
        "1:  ldm r1!, {r5, r6, r7}\n"
        KWS_Q6_WORD("r5")
        KWS_Q6_WORD("r6")
        KWS_Q6_WORD("r7")
        "    ldr r10, [r0], #4\n"
        "    sxtb16 r8, r10\n"
        "    sxtb16 r9, r10, ror #8\n"
        KWS_Q6_MAC2("ubfx r11, r5, #24, #6", "ubfx r12, r6, #24, #6", "smlabb", "smlabb")
        "    ubfx r11, r7, #24, #6\n"
        "    lsr r12, r5, #30\n"
        "    lsr r6, r6, #30\n"
        "    orr r12, r12, r6, lsl #2\n"
        "    lsr r7, r7, #30\n"
        "    orr r12, r12, r7, lsl #4\n"
        "    ldrsb r11, [r4, r11]\n"
        "    ldrsb r12, [r4, r12]\n"
        "    smlabt r2, r11, r8, r2\n"
        "    smlabt r2, r12, r9, r2\n"
        "    cmp r0, r3\n"
        "    bne 1b\n"
        "2:  mov r0, r2\n"
        "    pop {r4-r11, pc}\n"
        ".size kws_fc_q6_dot1, .-kws_fc_q6_dot1\n"
        ".popsection\n");
#endif

/* 6 bits (layout: codegen.fc_packed_layout): per unit, every 4 input words in 3 code words (word k:
 * input word k's 4 codes in bits 0-23, code k of input word 3 in bits 24-29, 2 bits of its code 3
 * in bits 30-31), then one word per leftover input word; weights straight from the int8 table. */
void kws_fc_packed6_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth, units = p->units, groups = depth >> 2, quads = groups >> 2, tail = groups & 3;
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        const uint32_t *c = (const uint32_t *)(const void *)p->packed;
        for (int u = 0; u < units; ++u) {
            const int8_t *t = p->tables + u * 64, *x = in;
            int32_t acc = p->bias[u];
#if KWS_USE_DSP && defined(__thumb2__)
            acc = kws_fc_q6_dot1(x, c, acc, quads, t);
            c += 3 * quads;
            x += 16 * quads;
#else
            for (int k = 0; k < quads; ++k, c += 3, x += 16) {
                const uint32_t w0 = c[0], w1 = c[1], w2 = c[2];
                acc = mac4_6(t[w0 & 63u], t[(w0 >> 6) & 63u], t[(w0 >> 12) & 63u], t[(w0 >> 18) & 63u], x, acc);
                acc = mac4_6(t[w1 & 63u], t[(w1 >> 6) & 63u], t[(w1 >> 12) & 63u], t[(w1 >> 18) & 63u], x + 4, acc);
                acc = mac4_6(t[w2 & 63u], t[(w2 >> 6) & 63u], t[(w2 >> 12) & 63u], t[(w2 >> 18) & 63u], x + 8, acc);
                const uint32_t c3 = w0 >> 30 | (w1 >> 30) << 2 | (w2 >> 30) << 4;
                acc = mac4_6(t[(w0 >> 24) & 63u], t[(w1 >> 24) & 63u], t[(w2 >> 24) & 63u], t[c3], x + 12, acc);
            }
#endif
            for (int k = 0; k < tail; ++k, ++c, x += 4) {
                const uint32_t w = *c;
                acc = mac4_6(t[w & 63u], t[(w >> 6) & 63u], t[(w >> 12) & 63u], t[(w >> 18) & 63u], x, acc);
            }
            out[u] = fc_requant(p, u, acc);
        }
    }
}

/* 2 bits: blocks of 4 units decode a chunk of their rows into kws_fc_s8's interleaved layout. */
void kws_fc_packed2_s8(const kws_fc_packed_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    const int depth = p->depth, units = p->units;
    const int groups = depth >> 2; /* one code byte per input word */
    uint32_t *buf = (uint32_t *)(void *)scratch; /* KWS_FC_CHUNK groups x 4 units, interleaved */
    uint32_t *byte_tabs = buf + 4 * KWS_FC_CHUNK; /* 4 x 256 words */
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        for (int u = 0; u < units; u += 4) {
            int32_t acc[4];
            for (int i = 0; i < 4; ++i) acc[i] = u + i < units ? p->bias[u + i] : 0;
            for (int i = 0; i < 4 && u + i < units; ++i) build_byte_table_2(p->tables + (u + i) * 4, byte_tabs + i * 256);
            for (int g0 = 0; g0 < groups; g0 += KWS_FC_CHUNK) {
                const int n = groups - g0 < KWS_FC_CHUNK ? groups - g0 : KWS_FC_CHUNK;
                for (int i = 0; i < 4; ++i) {
                    if (u + i >= units) { /* units % 4 padding: zero weights, never stored */
                        for (int g = 0; g < n; ++g) buf[4 * g + i] = 0;
                    } else {
                        decode_row_2(p->packed + (u + i) * groups + g0, byte_tabs + i * 256, n, buf + i);
                    }
                }
                kws_fc_dot4(in + 4 * g0, (const int8_t *)buf, acc, n);
            }
            for (int i = 0; i < 4 && u + i < units; ++i) out[u + i] = fc_requant(p, u + i, acc[i]);
        }
    }
}

/* Two int16 weights as one SMLAD operand word (PKHBT). */
KWS_INLINE uint32_t pair16(int32_t lo, int32_t hi) { return (uint32_t)(uint16_t)lo | (uint32_t)hi << 16; }

/* The fast CONV_2D's weight words (int16 pairs, in kws_conv2d_fast_s8's read order) from codes in
 * the same order (2 or 4 bits: codegen never packs this layer's weights at 6), once per inference.
 * Per block of 4 or 2 channels the channels' values (doubled when short_q) go into a small int32
 * table on the stack, then every code byte gives one word (4 bits) or two (2 bits). */
void kws_conv_fast_decode(const kws_conv2d_fast_t *p, uint32_t *dst) {
    const int bits = p->bits, n_tab = 1 << bits, dbl = p->short_q ? 1 : 0;
    const int steps = p->k_h * p->pairs, oc_pad = (p->out_c + 1) & ~1;
    const uint8_t *src = p->packed;
    int32_t v[4][16];
    for (int c0 = 0; c0 < oc_pad; c0 += 4) {
        const int nch = oc_pad - c0 >= 4 ? 4 : 2;
        for (int c = 0; c < nch; ++c)
            for (int k = 0; k < n_tab; ++k) v[c][k] = p->tables[(c0 + c) * n_tab + k] * (1 << dbl);
        if (bits == 4 && nch == 4) {
            for (int s = 0; s < steps; ++s, src += 4, dst += 4) {
                const uint32_t b = kws_load32(src); /* one byte per channel: its (kx, kx + 1) codes */
                dst[0] = pair16(v[0][b & 15u], v[0][(b >> 4) & 15u]);
                dst[1] = pair16(v[1][(b >> 8) & 15u], v[1][(b >> 12) & 15u]);
                dst[2] = pair16(v[2][(b >> 16) & 15u], v[2][(b >> 20) & 15u]);
                dst[3] = pair16(v[3][(b >> 24) & 15u], v[3][b >> 28]);
            }
        } else if (bits == 4) {
            for (int s = 0; s < steps; ++s, src += 2, dst += 2) {
                dst[0] = pair16(v[0][src[0] & 15u], v[0][src[0] >> 4]);
                dst[1] = pair16(v[1][src[1] & 15u], v[1][src[1] >> 4]);
            }
        } else if (nch == 4) { /* 2 bits: a byte is the words of two channels */
            for (int s = 0; s < steps; ++s, src += 2, dst += 4) {
                const uint32_t b = (uint32_t)src[0] | (uint32_t)src[1] << 8;
                dst[0] = pair16(v[0][b & 3u], v[0][(b >> 2) & 3u]);
                dst[1] = pair16(v[1][(b >> 4) & 3u], v[1][(b >> 6) & 3u]);
                dst[2] = pair16(v[2][(b >> 8) & 3u], v[2][(b >> 10) & 3u]);
                dst[3] = pair16(v[3][(b >> 12) & 3u], v[3][b >> 14]);
            }
        } else {
            for (int s = 0; s < steps; ++s)
                for (int c = 0; c < nch; c += 2, dst += 2) {
                    const uint32_t b = *src++;
                    dst[0] = pair16(v[c][b & 3u], v[c][(b >> 2) & 3u]);
                    dst[1] = pair16(v[c + 1][(b >> 4) & 3u], v[c + 1][b >> 6]);
                }
        }
    }
}

/* Sparse FULLY_CONNECTED (unstructured-pruned weights): per unit, groups of 4 (position step, value)
 * pairs; steps are 4-bit, or 8-bit where that is smaller (a zero-valued filler bridges longer gaps,
 * zero-valued entries with step 0 pad the last group), values int8. One word of 4 values is sign-extended with SXTB16 like the dense
 * kernel's, the 4 inputs are gathered into the matching lanes (x0, x2) / (x1, x3), two SMLADs. Zero
 * weights contribute nothing to TFLite's sum, so skipping them is exact. */
/* One unit's groups; `wide` is a constant at each call below, so each step width gets its own loop. */
KWS_INLINE int32_t sparse_row(const int8_t *x, const uint8_t **dp, const int8_t **wp, int groups, int32_t acc,
                              int wide) {
    const uint8_t *d = *dp;
    const int8_t *w = *wp;
    for (int g = groups; g > 0; --g, w += 4) {
        const int8_t *x0, *x1, *x2, *x3;
        if (wide) { /* 8-bit steps (very sparse rows: few fillers) */
            const uint32_t dd = kws_load32(d);
            d += 4;
            x0 = x + (dd & 255u), x1 = x0 + ((dd >> 8) & 255u), x2 = x1 + ((dd >> 16) & 255u), x3 = x2 + (dd >> 24);
        } else {
            const uint32_t dd = (uint32_t)d[0] | (uint32_t)d[1] << 8;
            d += 2;
            x0 = x + (dd & 15u), x1 = x0 + ((dd >> 4) & 15u), x2 = x1 + ((dd >> 8) & 15u), x3 = x2 + (dd >> 12);
        }
        x = x3;
        const uint32_t lo = ((uint32_t)(int32_t)*x0 & 0xFFFFu) | ((uint32_t)(int32_t)*x2 << 16);
        const uint32_t hi = ((uint32_t)(int32_t)*x1 & 0xFFFFu) | ((uint32_t)(int32_t)*x3 << 16);
        const uint32_t wv = kws_load32(w);
        acc = kws_smlad(kws_sxtb16(wv), lo, acc);
        acc = kws_smlad(kws_sxtb16_ror8(wv), hi, acc);
    }
    *dp = d;
    *wp = w;
    return acc;
}

#if KWS_USE_DSP && defined(__thumb2__)
/* sparse_row with 4-bit steps (r0 = x, r1 = steps, r2 = values, r3 = groups, [sp] = acc): 21
 * instructions per group of 4 nonzeros (the C above is the reference; GCC's takes 24.5), the
 * addresses computed first so the loads issue back to back. */
int32_t kws_fc_sparse4_asm(const int8_t *x, const uint8_t *d, const int8_t *w, int groups, int32_t acc);
__asm__(".pushsection .text.kws_fc_sparse4_asm,\"ax\",%progbits\n"
        ".syntax unified\n.thumb\n.p2align 2\n.global kws_fc_sparse4_asm\n.thumb_func\n"
        ".type kws_fc_sparse4_asm, %function\n"
        "kws_fc_sparse4_asm:\n"
        "    push {r4-r9, lr}\n"
        "    ldr r4, [sp, #28]\n"
        "    cmp r3, #0\n"
        "    beq 2f\n"
        "1:  ldrh r5, [r1], #2\n"
        "    ldr r9, [r2], #4\n"
        "    and r6, r5, #15\n"
        "    add r6, r0, r6\n"
        "    ubfx r7, r5, #4, #4\n"
        "    add r7, r6, r7\n"
        "    ubfx r8, r5, #8, #4\n"
        "    add r8, r7, r8\n"
        "    add r0, r8, r5, lsr #12\n"
        "    ldrsb r6, [r6]\n"
        "    ldrsb r7, [r7]\n"
        "    ldrsb r8, [r8]\n"
        "    ldrsb r5, [r0]\n"
        "    pkhbt r6, r6, r8, lsl #16\n"
        "    pkhbt r7, r7, r5, lsl #16\n"
        "    sxtb16 r8, r9\n"
        "    sxtb16 r9, r9, ror #8\n"
        "    smlad r4, r8, r6, r4\n"
        "    smlad r4, r9, r7, r4\n"
        "    subs r3, r3, #1\n"
        "    bne 1b\n"
        "2:  mov r0, r4\n"
        "    pop {r4-r9, pc}\n"
        ".size kws_fc_sparse4_asm, .-kws_fc_sparse4_asm\n"
        ".popsection\n");
#endif

void kws_fc_sparse_s8(const kws_fc_sparse_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth, units = p->units;
    for (int b = 0; b < p->batches; ++b, in += depth, out += units) {
        const uint8_t *d = p->steps;
        const int8_t *w = p->values;
        for (int u = 0; u < units; ++u) {
            int32_t acc;
            if (p->step_bits == 8) {
                acc = sparse_row(in, &d, &w, p->groups[u], p->bias[u], 1);
            } else {
#if KWS_USE_DSP && defined(__thumb2__)
                acc = kws_fc_sparse4_asm(in, d, w, p->groups[u], p->bias[u]);
                d += 2 * p->groups[u];
                w += 4 * p->groups[u];
#else
                acc = sparse_row(in, &d, &w, p->groups[u], p->bias[u], 0);
#endif
            }
            const int q = p->per_channel ? u : 0;
            out[u] = kws_requant(acc, p->multiplier[q], p->shift[q], p->output_zp, p->act_min, p->act_max);
        }
    }
}
