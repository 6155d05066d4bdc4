#include "tte_grad_core.h"
#include "tte_sgd_core.h"

tte_status tte_gemm_weight_update_s8(int32_t n, int32_t k, int32_t m, int32_t channels, const tte_saved_s8 *x,
                                     const float *dz, const float *factors, const tte_sgd_params *sgd,
                                     int8_t *weights) {
    for (int32_t o = 0; o < m; o++) {
        for (int32_t i = 0; i < channels; i += TTE_GEMM_LANES) {
            const int32_t ni = channels - i < TTE_GEMM_LANES ? channels - i : TTE_GEMM_LANES;
            float g[TTE_GEMM_LANES];
            tte_gemm_weight_grad_block(n, k, m, channels, x, dz, o, i, ni, g);
            for (int32_t t = 0; t < ni; t++) {
                int8_t *p = weights + (size_t)o * (size_t)k + i + t;
                *p = (int8_t)tte_sgd_value(sgd, *p, g[t], factors[o], (uint32_t)(o * channels + i + t));
            }
        }
    }
    return TTE_OK;
}
