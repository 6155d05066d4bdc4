#include "tte_internal.h"
#include "tte_runtime.h"

tte_status tte_quantize_f32(int32_t size, const float *input, float scale, int32_t zero_point, int8_t *output) {
    for (int32_t i = 0; i < size; i++) output[i] = tte_round_clamp(input[i] / scale, zero_point, -128, 127);
    return TTE_OK;
}
