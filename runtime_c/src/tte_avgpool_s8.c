#include "tte_internal.h"
#include "tte_runtime.h"

/* acc = sum over the window of (x - z_x); padding contributes 0 and counts only with count_include_pad. */
tte_status tte_avgpool_s8(const tte_pool_geometry *geo, const tte_quant_params *q, int32_t count_include_pad,
                          const tte_dims *in_dims, const int8_t *input, const float *multipliers,
                          const tte_dims *out_dims, int8_t *output, uint8_t *mask) {
    const int32_t H = in_dims->h, W = in_dims->w, HO = out_dims->h, WO = out_dims->w;
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        const int8_t *x = input + (size_t)nc * (size_t)H * (size_t)W;
        for (int32_t oh = 0; oh < HO; oh++) {
            for (int32_t ow = 0; ow < WO; ow++) {
                int32_t acc = 0, count = 0;
                for (int32_t i = 0; i < geo->kernel_h; i++) {
                    const int32_t ih = oh * geo->stride_h - geo->pad_top + i;
                    for (int32_t j = 0; j < geo->kernel_w; j++) {
                        const int32_t iw = ow * geo->stride_w - geo->pad_left + j;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        acc += (int32_t)x[ih * W + iw] - q->input_zero_point;
                        count++;
                    }
                }
                if (count_include_pad) count = geo->kernel_h * geo->kernel_w;
                const size_t idx = ((size_t)nc * (size_t)HO + (size_t)oh) * (size_t)WO + (size_t)ow;
                output[idx] = tte_round_clamp_mask((float)acc * multipliers[count], q->output_zero_point, q->qmin,
                                                   q->qmax, mask, idx);
            }
        }
    }
    return TTE_OK;
}
