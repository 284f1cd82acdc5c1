/* SOFTMAX int8 -> int8: TFLite's reference_ops::Softmax (quantized), which TFLM runs for int8
 * input and output. It works in gemmlowp fixed point: differences to the row maximum are scaled
 * into Q5.26, exp() is evaluated on negative values with a polynomial plus a barrel shifter of
 * constants, the sum is kept in Q12.19 and inverted by Newton-Raphson. Every step below is the
 * integer operation gemmlowp performs, so the output matches bit for bit.
 */
#include "kws_arith.h"
#include "kws_runtime.h"

/* gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent (saturating left shift). */
static int32_t sat_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_on_interval(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (1 << 28);              /* a + 1/8 */
    const int32_t x2 = kws_srdhm(x, x);
    const int32_t x3 = kws_srdhm(x2, x);
    const int32_t x4 = kws_srdhm(x2, x2);
    const int32_t x4_over_4 = kws_rdbypot(x4, 2);
    const int32_t poly = kws_rdbypot(kws_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + kws_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result in Q0.31. */
static int32_t exp_on_negative_values(int32_t a) {
    const int fractional_bits = 26;
    const int32_t one_quarter = 1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_on_interval(sat_shl(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    for (int i = 0; i < 7; ++i) { /* exponents -2 .. +4 */
        if (remainder & (1 << (fractional_bits - 2 + i))) result = kws_srdhm(result, multipliers[i]);
    }
    if (a == 0) result = INT32_MAX;
    return result;
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out (Newton-Raphson in Q2.29). */
static int32_t one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540;
    int32_t x = c48_17 + kws_srdhm(half_denominator, cneg32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = kws_srdhm(half_denominator, x);
        const int32_t one_minus = (1 << 29) - hdx;
        x = x + sat_shl(kws_srdhm(x, one_minus), 2);
    }
    return sat_shl(x, 1);
}

static int count_leading_zeros(uint32_t x) {
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

void kws_softmax_s8(const kws_softmax_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth;
    for (int r = 0; r < p->rows; ++r, in += depth, out += depth) {
        int32_t max_in_row = -128;
        for (int c = 0; c < depth; ++c) max_in_row = in[c] > max_in_row ? in[c] : max_in_row;

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = kws_mbqm(diff, p->input_multiplier, p->input_left_shift);
                sum_of_exps += kws_rdbypot(exp_on_negative_values(scaled), 12);
            }
        }

        const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        const int num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (1u << 31));
        const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);

        for (int c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = kws_mbqm(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = exp_on_negative_values(scaled);
                int32_t v = kws_rdbypot(kws_srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8) - 128;
                v = v < -128 ? -128 : (v > 127 ? 127 : v);
                out[c] = (int8_t)v;
            } else {
                out[c] = -128;
            }
        }
    }
}
