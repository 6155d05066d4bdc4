#include "tte_sgd_core.h"

/* grad and param both have the trained slice's layout; factors[i / row_length]. */
tte_status tte_sgd_s8(int32_t size, int32_t row_length, const float *grad, const float *factors,
                      const tte_sgd_params *sgd, int8_t *param) {
    if (row_length < 1) return TTE_ERROR_ARGUMENT;
    for (int32_t i = 0; i < size; i++)
        param[i] = (int8_t)tte_sgd_value(sgd, param[i], grad[i], factors[i / row_length], (uint32_t)i);
    return TTE_OK;
}
