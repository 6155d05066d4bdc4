#include "tte_runtime.h"

/* d_this[i] = dz[i] * real(other), real(q) = (float)(q - zero_point) * scale; other has dz's dims or is per
 * channel [n, c, 1, 1] (one real value per plane).  Float32 products only; d_this may be dz. */
tte_status tte_mul_grad_f32(const tte_dims *dz_dims, const float *dz, const tte_dims *other_dims,
                            const tte_saved_s8 *other, float *d_this) {
    const int32_t planes = dz_dims->n * dz_dims->c, hw = dz_dims->h * dz_dims->w;
    const int per_channel = other_dims->n == dz_dims->n && other_dims->c == dz_dims->c && other_dims->h == 1 &&
                            other_dims->w == 1;
    const int same = other_dims->n == dz_dims->n && other_dims->c == dz_dims->c && other_dims->h == dz_dims->h &&
                     other_dims->w == dz_dims->w;
    if (!same && !per_channel) return TTE_ERROR_ARGUMENT;
    for (int32_t p = 0; p < planes; p++) {
        const size_t base = (size_t)p * (size_t)hw;
        if (same) {
            for (int32_t k = 0; k < hw; k++) {
                const size_t i = base + (size_t)k;
                d_this[i] = dz[i] * ((float)((int32_t)other->data[i] - other->zero_point) * other->scale);
            }
        } else {
            const float real = (float)((int32_t)other->data[p] - other->zero_point) * other->scale;
            for (int32_t k = 0; k < hw; k++) d_this[base + (size_t)k] = dz[base + (size_t)k] * real;
        }
    }
    return TTE_OK;
}
