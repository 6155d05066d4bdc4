#include "tte_runtime.h"

tte_status tte_add_f32(int32_t size, const float *a, const float *b, float *output) {
    for (int32_t i = 0; i < size; i++) output[i] = a[i] + b[i];
    return TTE_OK;
}
