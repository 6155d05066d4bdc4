#include "tte_internal.h"
#include "tte_runtime.h"

/* Elementwise multiply with TFLite's arithmetic (MulElementwise): MBQM((a - za) * (b - zb), multiplier, shift)
 * + z_y, clamped; the product is exact (at most 255 * 255).  b has a's dims or is per channel [n, c, 1, 1]. */
tte_status tte_mul_tflite_s8(const tte_dims *a_dims, const int8_t *a, int32_t a_zero_point, const tte_dims *b_dims,
                             const int8_t *b, int32_t b_zero_point, int32_t multiplier, int32_t shift,
                             int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask) {
    const int32_t planes = a_dims->n * a_dims->c, hw = a_dims->h * a_dims->w;
    const int per_channel = b_dims->n == a_dims->n && b_dims->c == a_dims->c && b_dims->h == 1 && b_dims->w == 1;
    const int same = b_dims->n == a_dims->n && b_dims->c == a_dims->c && b_dims->h == a_dims->h &&
                     b_dims->w == a_dims->w;
    if (!same && !per_channel) return TTE_ERROR_ARGUMENT;
    for (int32_t p = 0; p < planes; p++) {
        for (int32_t k = 0; k < hw; k++) {
            const size_t i = (size_t)p * (size_t)hw + (size_t)k;
            const int32_t product = ((int32_t)a[i] - a_zero_point) * ((int32_t)b[same ? i : (size_t)p] - b_zero_point);
            output[i] = tte_clamp_mask((int64_t)tte_mbqm(product, multiplier, shift) + output_zero_point, qmin, qmax,
                                       mask, i);
        }
    }
    return TTE_OK;
}
