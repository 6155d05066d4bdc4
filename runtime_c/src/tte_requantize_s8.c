#include "tte_internal.h"
#include "tte_runtime.h"

tte_status tte_requantize_s8(int32_t size, const int8_t *input, int32_t input_zero_point, float multiplier,
                             int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output,
                             uint8_t *mask) {
    for (int32_t i = 0; i < size; i++)
        output[i] = tte_round_clamp_mask((float)((int32_t)input[i] - input_zero_point) * multiplier,
                                         output_zero_point, qmin, qmax, mask, (size_t)i);
    return TTE_OK;
}
