#include "tte_runtime.h"

tte_status tte_gemm_grad_input_f32(int32_t n, int32_t k, int32_t m, const float *dz, const tte_weights_s8 *w,
                                   float *dx) {
    for (int32_t b = 0; b < n; b++) {
        for (int32_t i = 0; i < k; i++) {
            float acc = 0.0f;
            for (int32_t o = 0; o < m; o++) {
                const int32_t wz = w->zero_points ? w->zero_points[o] : 0;
                const float wr =
                    (float)((int32_t)w->data.trained[(size_t)o * (size_t)k + (size_t)i] - wz) * w->scales[o];
                acc += dz[(size_t)b * (size_t)m + (size_t)o] * wr;
            }
            dx[(size_t)b * (size_t)k + (size_t)i] = acc;
        }
    }
    return TTE_OK;
}
