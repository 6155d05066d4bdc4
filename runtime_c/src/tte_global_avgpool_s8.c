#include "tte_internal.h"
#include "tte_runtime.h"

tte_status tte_global_avgpool_s8(const tte_quant_params *q, float multiplier, const tte_dims *in_dims,
                                 const int8_t *input, int8_t *output, uint8_t *mask) {
    const int32_t hw = in_dims->h * in_dims->w;
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        int32_t acc = 0;
        for (int32_t p = 0; p < hw; p++)
            acc += (int32_t)input[(size_t)nc * (size_t)hw + (size_t)p] - q->input_zero_point;
        output[nc] = tte_round_clamp_mask((float)acc * multiplier, q->output_zero_point, q->qmin, q->qmax, mask,
                                          (size_t)nc);
    }
    return TTE_OK;
}
