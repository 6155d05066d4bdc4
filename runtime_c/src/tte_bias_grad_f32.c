#include "tte_grad_core.h"

tte_status tte_bias_grad_f32(const tte_dims *dz_dims, const float *dz, float *grad) {
    int32_t o = 0;
    for (; o + TTE_BIAS_BLOCK <= dz_dims->c; o += TTE_BIAS_BLOCK) tte_bias_grad_block(dz_dims, dz, o, grad + o);
    for (; o < dz_dims->c; o++) grad[o] = tte_bias_grad_row(dz_dims, dz, o);
    return TTE_OK;
}
