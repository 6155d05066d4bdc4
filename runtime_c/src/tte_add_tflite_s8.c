#include "tte_internal.h"
#include "tte_runtime.h"

/* Elementwise add with TFLite's arithmetic (reference_integer_ops::AddFunc): each input's (q - z) * 2^20 is
 * scaled by its multiplier, the int32 sum by the output one (MBQM; params = {m_a, n_a, m_b, n_b, m_y, n_y} from
 * tte/reference/fixedpoint.py:add_multipliers), plus z_y, clamped.  |q - z| <= 255, so nothing overflows.
 * Element i of a meets b[(i / b_inner) % b_size] (a constant that broadcasts; see tte_runtime.h). */
tte_status tte_add_tflite_s8(int32_t size, const int8_t *a, int32_t a_zero_point, int32_t b_size, int32_t b_inner,
                             const int8_t *b, int32_t b_zero_point, const int32_t *params, int32_t output_zero_point,
                             int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask) {
    if (b_size < 1 || b_inner < 1 || size % b_size || (size / b_size) % b_inner) return TTE_ERROR_ARGUMENT;
    for (int32_t i = 0; i < size; i++) {
        const int32_t va = tte_mbqm(((int32_t)a[i] - a_zero_point) * (1 << 20), params[0], params[1]);
        const int32_t qb = b[(i / b_inner) % b_size];
        const int32_t vb = tte_mbqm((qb - b_zero_point) * (1 << 20), params[2], params[3]);
        output[i] = tte_clamp_mask((int64_t)tte_mbqm(va + vb, params[4], params[5]) + output_zero_point, qmin, qmax,
                                   mask, (size_t)i);
    }
    return TTE_OK;
}
