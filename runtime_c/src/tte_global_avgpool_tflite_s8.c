#include "tte_internal.h"
#include "tte_runtime.h"

/* Global average pool with TFLite's arithmetic (MEAN over H and W, reference_ops::QuantizedMeanOrSum): per plane,
 * MBQM(sum of the raw values - z_x * H * W, multiplier, shift) + z_y, clamped, where (multiplier, shift) is
 * s_x / s_y with 1 / (H * W) folded in (tte/reference/fixedpoint.py:mean_multiplier). */
tte_status tte_global_avgpool_tflite_s8(const tte_quant_params *q, int32_t multiplier, int32_t shift,
                                        const tte_dims *in_dims, const int8_t *input, int8_t *output, uint8_t *mask) {
    const int32_t hw = in_dims->h * in_dims->w;
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        int32_t total = 0;
        for (int32_t p = 0; p < hw; p++) total += input[(size_t)nc * (size_t)hw + (size_t)p];
        const int32_t centered = (int32_t)((int64_t)total - (int64_t)q->input_zero_point * hw);
        output[nc] = tte_clamp_mask((int64_t)tte_mbqm(centered, multiplier, shift) + q->output_zero_point, q->qmin,
                                    q->qmax, mask, (size_t)nc);
    }
    return TTE_OK;
}
