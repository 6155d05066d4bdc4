#include "tte_runtime.h"

/* dx = dy * slopes[c], one float32 product per element; the channel is the second dimension.  dx may be dy. */
tte_status tte_affine_grad_f32(const tte_dims *dims, const float *dy, const float *slopes, float *dx) {
    const int32_t hw = dims->h * dims->w;
    size_t i = 0;
    for (int32_t n = 0; n < dims->n; n++) {
        for (int32_t c = 0; c < dims->c; c++) {
            const float s = slopes[c];
            for (int32_t k = 0; k < hw; k++, i++) dx[i] = dy[i] * s;
        }
    }
    return TTE_OK;
}
