#include "tte_runtime.h"

tte_status tte_ste_f32(int32_t size, const float *grad, const uint8_t *mask, float *output) {
    for (int32_t i = 0; i < size; i++) output[i] = (mask[i >> 3] >> (i & 7)) & 1 ? grad[i] : 0.0f;
    return TTE_OK;
}
