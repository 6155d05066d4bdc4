#include "tte_internal.h"
#include "tte_runtime.h"

/* round(v) half away from zero, as std::round, for |v| clamped to 2^40 (far outside int8, and it keeps the
 * conversion to int64 defined): the truncated value and the exact fraction left (|v| < 2^53). */
static int64_t tte_round_away(double v) {
    if (v > 1099511627776.0) v = 1099511627776.0;
    if (v < -1099511627776.0) v = -1099511627776.0;
    int64_t t = (int64_t)v;
    const double fraction = v - (double)t;
    if (fraction >= 0.5) t++;
    if (fraction <= -0.5) t--;
    return t;
}

/* Fully connected with TFLite's reference arithmetic (reference_integer_ops::FullyConnected with float scales,
 * what TFLite's reference FULLY_CONNECTED runs): acc = sum_k (x - z_x) * (w - z_w[o]) + bias[o] (saturated to
 * int32), y = round(acc * multipliers[o]) in double precision, half away from zero, plus z_y, clamped.
 * multipliers[o] = (double)s_x * (double)s_w[o] / (double)s_y. */
tte_status tte_gemm_tflite_s8(const tte_quant_params *q, int32_t n, int32_t k, int32_t m, const int8_t *input,
                              const int8_t *weights, const int32_t *weight_zero_points, const int32_t *bias,
                              const double *multipliers, int8_t *output, uint8_t *mask) {
    for (int32_t b = 0; b < n; b++) {
        for (int32_t o = 0; o < m; o++) {
            const int32_t wz = weight_zero_points ? weight_zero_points[o] : 0;
            int32_t acc = 0;
            for (int32_t i = 0; i < k; i++)
                acc += ((int32_t)input[(size_t)b * (size_t)k + (size_t)i] - q->input_zero_point) *
                       ((int32_t)weights[(size_t)o * (size_t)k + (size_t)i] - wz);
            const size_t idx = (size_t)b * (size_t)m + (size_t)o;
            const double v = (double)tte_add_sat(acc, bias[o]) * multipliers[o];
            output[idx] = tte_clamp_mask(tte_round_away(v) + q->output_zero_point, q->qmin, q->qmax, mask, idx);
        }
    }
    return TTE_OK;
}
