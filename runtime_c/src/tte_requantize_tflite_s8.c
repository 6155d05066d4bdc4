#include "tte_internal.h"
#include "tte_runtime.h"

/* TFLite's Requantize (int8 QUANTIZE): MBQM(x - z_x, multiplier, shift) + z_y, clamped.  Equal parameters give
 * multiplier 2^30, shift 1: the identity.  May run in place. */
tte_status tte_requantize_tflite_s8(int32_t size, const int8_t *input, int32_t input_zero_point, int32_t multiplier,
                                    int32_t shift, int32_t output_zero_point, int32_t qmin, int32_t qmax,
                                    int8_t *output, uint8_t *mask) {
    for (int32_t i = 0; i < size; i++)
        output[i] = tte_clamp_mask((int64_t)tte_mbqm((int32_t)input[i] - input_zero_point, multiplier, shift) +
                                       output_zero_point, qmin, qmax, mask, (size_t)i);
    return TTE_OK;
}
