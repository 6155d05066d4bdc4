#include "tte_grad_core.h"

tte_status tte_gemm_grad_weight_f32(int32_t n, int32_t k, int32_t m, int32_t channels, const tte_saved_s8 *x,
                                    const float *dz, float *grad) {
    for (int32_t o = 0; o < m; o++) {
        for (int32_t i = 0; i < channels; i += TTE_GEMM_LANES) {
            const int32_t ni = channels - i < TTE_GEMM_LANES ? channels - i : TTE_GEMM_LANES;
            tte_gemm_weight_grad_block(n, k, m, channels, x, dz, o, i, ni, grad + (size_t)o * (size_t)channels + i);
        }
    }
    return TTE_OK;
}
