#include "tte_runtime.h"

tte_status tte_momentum_f32(int32_t size, float beta, const float *grad, float *velocity) {
    for (int32_t i = 0; i < size; i++) velocity[i] = beta * velocity[i] + grad[i];
    return TTE_OK;
}
