#include "tte_internal.h"
#include "tte_runtime.h"

/* y[b, o] = requantize(sum_k (x[b, k] - z_x) * (w[o, k] - z_w[o]) + bias[o]): with the float32 multipliers[o]
 * (onnxruntime's arithmetic), or, when q->multiplier is set, TFLite Micro's (and CMSIS-NN's) FULLY_CONNECTED
 * output stage: MBQM by q->multiplier[o] and q->shift[o], as a conv (multipliers is then unused). */
tte_status tte_gemm_s8(const tte_quant_params *q, int32_t n, int32_t k, int32_t m, const int8_t *input,
                       const int8_t *weights, const int32_t *weight_zero_points, const int32_t *bias,
                       const float *multipliers, int8_t *output, uint8_t *mask) {
    for (int32_t b = 0; b < n; b++) {
        for (int32_t o = 0; o < m; o++) {
            const int32_t wz = weight_zero_points ? weight_zero_points[o] : 0;
            const tte_rq r = tte_rq_channel(q, bias, multipliers, o);
            const int32_t acc = tte_dot_s8(input + (size_t)b * (size_t)k, weights + (size_t)o * (size_t)k, k,
                                           q->input_zero_point, wz);
            const size_t idx = (size_t)b * (size_t)m + (size_t)o;
            output[idx] = tte_rq_apply(&r, acc, mask, idx);
        }
    }
    return TTE_OK;
}
