#include "tte_grad_core.h"
#include "tte_sgd_core.h"

tte_status tte_bias_update_s32(const tte_dims *dz_dims, const float *dz, const float *factors,
                               const tte_sgd_params *sgd, int32_t *bias) {
    int32_t o = 0;
    for (; o + TTE_BIAS_BLOCK <= dz_dims->c; o += TTE_BIAS_BLOCK) {
        float grad[TTE_BIAS_BLOCK];
        tte_bias_grad_block(dz_dims, dz, o, grad);
        for (int32_t k = 0; k < TTE_BIAS_BLOCK; k++)
            bias[o + k] = (int32_t)tte_sgd_value(sgd, bias[o + k], grad[k], factors[o + k], (uint32_t)(o + k));
    }
    for (; o < dz_dims->c; o++)
        bias[o] = (int32_t)tte_sgd_value(sgd, bias[o], tte_bias_grad_row(dz_dims, dz, o), factors[o], (uint32_t)o);
    return TTE_OK;
}
