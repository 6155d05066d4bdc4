#include "tte_internal.h"
#include "tte_runtime.h"

/* Average pool with TFLite's arithmetic (reference_integer_ops::AveragePool): the sum of the window's raw int8
 * values (padding counts, as z_x, only with count_include_pad) over the element count, rounded half away from
 * zero with C's truncating division; then MBQM(average - z_x, multiplier, shift) + z_y, the identity when in and
 * out parameters are equal (the only case TFLite has); clamped.  A window with no element averages to z_x. */
tte_status tte_avgpool_tflite_s8(const tte_pool_geometry *geo, const tte_quant_params *q, int32_t count_include_pad,
                                 const tte_dims *in_dims, const int8_t *input, int32_t multiplier, int32_t shift,
                                 const tte_dims *out_dims, int8_t *output, uint8_t *mask) {
    const int32_t H = in_dims->h, W = in_dims->w, HO = out_dims->h, WO = out_dims->w;
    const int32_t window = geo->kernel_h * geo->kernel_w;
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        const int8_t *x = input + (size_t)nc * (size_t)H * (size_t)W;
        for (int32_t oh = 0; oh < HO; oh++) {
            for (int32_t ow = 0; ow < WO; ow++) {
                const int32_t top = oh * geo->stride_h - geo->pad_top, left = ow * geo->stride_w - geo->pad_left;
                int32_t i0, i1, j0, j1, total = 0;
                tte_tap_range(top, geo->kernel_h, H, &i0, &i1);
                tte_tap_range(left, geo->kernel_w, W, &j0, &j1);
                for (int32_t i = i0; i < i1; i++)
                    for (int32_t j = j0; j < j1; j++) total += x[(top + i) * W + left + j];
                int32_t count = (i1 - i0) * (j1 - j0);
                if (count_include_pad) {
                    total += q->input_zero_point * (window - count);
                    count = window;
                }
                const int32_t average = count == 0 ? q->input_zero_point
                                        : total > 0 ? (total + count / 2) / count : (total - count / 2) / count;
                const size_t idx = ((size_t)nc * (size_t)HO + (size_t)oh) * (size_t)WO + (size_t)ow;
                output[idx] = tte_clamp_mask((int64_t)tte_mbqm(average - q->input_zero_point, multiplier, shift) +
                                                 q->output_zero_point, q->qmin, q->qmax, mask, idx);
            }
        }
    }
    return TTE_OK;
}
