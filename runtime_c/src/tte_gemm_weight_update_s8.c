#include "tte_grad_core.h"
#include "tte_sgd_core.h"

tte_status tte_gemm_weight_update_s8(int32_t n, int32_t k, int32_t m, int32_t channels, const tte_saved_s8 *x,
                                     const float *dz, const float *factors, const tte_sgd_params *sgd,
                                     int8_t *weights) {
    for (int32_t o = 0; o < m; o++) {
        for (int32_t i = 0; i < channels; i++) {
            int8_t *p = weights + (size_t)o * (size_t)k + i;
            *p = (int8_t)tte_sgd_value(sgd, *p, tte_gemm_weight_grad(n, k, m, x, dz, o, i), factors[o],
                                       (uint32_t)(o * channels + i));
        }
    }
    return TTE_OK;
}
