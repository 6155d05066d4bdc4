#include "tte_runtime.h"

tte_status tte_global_avgpool_grad_f32(const tte_dims *in_dims, const float *dz, float *dx) {
    const int32_t hw = in_dims->h * in_dims->w;
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        const float v = dz[nc] / (float)hw;
        for (int32_t p = 0; p < hw; p++) dx[(size_t)nc * (size_t)hw + (size_t)p] = v;
    }
    return TTE_OK;
}
