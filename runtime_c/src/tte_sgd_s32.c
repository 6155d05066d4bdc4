#include "tte_sgd_core.h"

tte_status tte_sgd_s32(int32_t size, const float *grad, const float *factors, const tte_sgd_params *sgd,
                       int32_t *param) {
    for (int32_t i = 0; i < size; i++)
        param[i] = (int32_t)tte_sgd_value(sgd, param[i], grad[i], factors[i], (uint32_t)i);
    return TTE_OK;
}
