#include "tte_runtime.h"

tte_status tte_dequantize_s8(int32_t size, const int8_t *input, float scale, int32_t zero_point, float *output) {
    for (int32_t i = 0; i < size; i++) output[i] = (float)((int32_t)input[i] - zero_point) * scale;
    return TTE_OK;
}
