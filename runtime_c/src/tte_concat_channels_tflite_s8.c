#include "tte_internal.h"
#include "tte_runtime.h"

/* One concat operand into its channel range of the output with TFLite's arithmetic: a copy when the parameters
 * are equal (TFLite's int8 CONCATENATION, multiplier 2^30, shift 1), else TFLite's Requantize. */
tte_status tte_concat_channels_tflite_s8(const tte_dims *in_dims, const int8_t *input, int32_t input_zero_point,
                                         int32_t multiplier, int32_t shift, int32_t output_zero_point, int32_t qmin,
                                         int32_t qmax, int32_t out_channels, int32_t channel_offset, int8_t *output,
                                         uint8_t *mask) {
    const int32_t plane = in_dims->h * in_dims->w;
    if (channel_offset + in_dims->c > out_channels) return TTE_ERROR_ARGUMENT;
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)in_dims->c * (size_t)plane;
        const size_t base = ((size_t)n * (size_t)out_channels + (size_t)channel_offset) * (size_t)plane;
        for (int32_t i = 0; i < in_dims->c * plane; i++)
            output[base + (size_t)i] = tte_clamp_mask((int64_t)tte_mbqm((int32_t)x[i] - input_zero_point, multiplier,
                                                                        shift) + output_zero_point,
                                                      qmin, qmax, mask, base + (size_t)i);
    }
    return TTE_OK;
}
