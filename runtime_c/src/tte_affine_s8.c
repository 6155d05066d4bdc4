#include "tte_internal.h"
#include "tte_runtime.h"

/* v = (float)(x - zx) * multipliers[c] + offsets[c]: two float32 operations, never fused (-ffp-contract=off),
 * rounded and clamped.  The channel is the second dimension (n, c, h, w: one plane of h * w per channel).
 * Each element is read before it is written, so output may be input. */
tte_status tte_affine_s8(const tte_dims *dims, const int8_t *input, int32_t input_zero_point,
                         const float *multipliers, const float *offsets, int32_t output_zero_point, int32_t qmin,
                         int32_t qmax, int8_t *output, uint8_t *mask) {
    const int32_t hw = dims->h * dims->w;
    size_t i = 0;
    for (int32_t n = 0; n < dims->n; n++) {
        for (int32_t c = 0; c < dims->c; c++) {
            const float m = multipliers[c], o = offsets[c];
            for (int32_t k = 0; k < hw; k++, i++) {
                const float product = (float)((int32_t)input[i] - input_zero_point) * m;
                output[i] = tte_round_clamp_mask(product + o, output_zero_point, qmin, qmax, mask, i);
            }
        }
    }
    return TTE_OK;
}
