#include "tte_sgd_core.h"

/* grad has the trained slice's layout: dims with dims[axis] replaced by `channels`. */
tte_status tte_sgd_s8(const tte_dims *p_dims, int32_t axis, int32_t channels, const float *grad,
                      const float *factors, const tte_sgd_params *sgd, int8_t *param) {
    const int32_t rows = axis == 0 ? channels : p_dims->n, full_cols = p_dims->c;
    const int32_t cols = axis == 0 ? p_dims->c : channels, inner = p_dims->h * p_dims->w;
    if (axis != 0 && axis != 1) return TTE_ERROR_ARGUMENT;
    for (int32_t o = 0; o < rows; o++)
        for (int32_t c = 0; c < cols; c++)
            for (int32_t t = 0; t < inner; t++) {
                const uint32_t index = (uint32_t)((o * cols + c) * inner + t);
                int8_t *p = param + ((size_t)o * full_cols + c) * inner + t;
                *p = (int8_t)tte_sgd_value(sgd, *p, grad[index], factors[o], index);
            }
    return TTE_OK;
}
