#include "tte_internal.h"
#include "tte_runtime.h"

/* v = (float)(a - za) * ma + (float)(b - zb) * mb, two float32 products and a float32 sum.  Element i of a
 * meets b[(i / b_inner) % b_size] (see tte_runtime.h). */
tte_status tte_add_s8(int32_t size, const int8_t *a, int32_t a_zero_point, float a_multiplier,
                      int32_t b_size, int32_t b_inner, const int8_t *b, int32_t b_zero_point, float b_multiplier,
                      int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask) {
    if (b_size < 1 || b_inner < 1 || size % b_size || (size / b_size) % b_inner) return TTE_ERROR_ARGUMENT;
    int32_t i = 0;
    if (b_size == size) { /* element by element (b_inner is then 1): no index arithmetic, whole mask bytes */
        for (; i + 8 <= size; i += 8) {
            uint32_t bits = 0u;
            TTE_ARM_UNROLL
            for (int32_t k = 0; k < 8; k++) {
                const float va = (float)((int32_t)a[i + k] - a_zero_point) * a_multiplier;
                const float vb = (float)((int32_t)b[i + k] - b_zero_point) * b_multiplier;
                int32_t r = tte_round_s32(va + vb) + output_zero_point;
                bits |= (uint32_t)(r >= qmin && r <= qmax) << k;
                r = r < qmin ? qmin : r > qmax ? qmax : r;
                output[i + k] = (int8_t)r;
            }
            if (mask) mask[i >> 3] = (uint8_t)bits;
        }
    }
    for (; i < size; i++) {
        const float va = (float)((int32_t)a[i] - a_zero_point) * a_multiplier;
        const float vb = (float)((int32_t)b[(i / b_inner) % b_size] - b_zero_point) * b_multiplier;
        output[i] = tte_round_clamp_mask(va + vb, output_zero_point, qmin, qmax, mask, (size_t)i);
    }
    return TTE_OK;
}
