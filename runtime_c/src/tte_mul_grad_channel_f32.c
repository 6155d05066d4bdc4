#include "tte_runtime.h"

/* d_this[n, c] = sum over positions p (h, w ascending, left to right) of dz[n, c, p] * real(other[n, c, p]),
 * other saved with dz's dims.  The sum starts from -0.0f, the float32 additive identity, so it equals the
 * reference's left-to-right sum bit for bit (signed zeros included).  d_this may be dz: entry p is written
 * after plane p, which starts at or past it, has been read. */
tte_status tte_mul_grad_channel_f32(const tte_dims *dz_dims, const float *dz, const tte_saved_s8 *other,
                                    float *d_this) {
    const int32_t planes = dz_dims->n * dz_dims->c, hw = dz_dims->h * dz_dims->w;
    for (int32_t p = 0; p < planes; p++) {
        const size_t base = (size_t)p * (size_t)hw;
        float acc = -0.0f;
        for (int32_t k = 0; k < hw; k++) {
            const float real = (float)((int32_t)other->data[base + (size_t)k] - other->zero_point) * other->scale;
            acc += dz[base + (size_t)k] * real;
        }
        d_this[p] = acc;
    }
    return TTE_OK;
}
