#include "tte_internal.h"
#include "tte_runtime.h"

/* Global average pool of an activation given as a table: per (n, c) plane, the float32 sum over positions
 * (ascending, left to right, from -0.0f) of table[x + 128], times `multiplier`, rounded and clamped. */
tte_status tte_lut_global_avgpool_s8(const tte_dims *in_dims, const int8_t *input, const float *table,
                                     float multiplier, int32_t output_zero_point, int32_t qmin, int32_t qmax,
                                     int8_t *output, uint8_t *mask) {
    const int32_t planes = in_dims->n * in_dims->c, hw = in_dims->h * in_dims->w;
    for (int32_t p = 0; p < planes; p++) {
        const int8_t *x = input + (size_t)p * (size_t)hw;
        float acc = -0.0f;
        for (int32_t k = 0; k < hw; k++) acc += table[(int32_t)x[k] + 128];
        output[p] = tte_round_clamp_mask(acc * multiplier, output_zero_point, qmin, qmax, mask, (size_t)p);
    }
    return TTE_OK;
}
