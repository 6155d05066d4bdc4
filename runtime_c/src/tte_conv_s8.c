#include "tte_internal.h"
#include "tte_runtime.h"

/* Direct convolution, any groups.  acc = sum (x - z_x) * (w - z_w[o]) over the window (padding reads
 * z_x, i.e. contributes 0), then bias, multiplier, rounding and clamp per tte_internal.h. */
tte_status tte_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                       const int8_t *input, const tte_dims *w_dims, const tte_split_weights *weights,
                       const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                       const tte_dims *out_dims, int8_t *output, uint8_t *mask) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = out_dims->h, WO = out_dims->w;
    if (geo->groups < 1 || C != CG * geo->groups || O % geo->groups || out_dims->c != O) return TTE_ERROR_ARGUMENT;
    const int32_t OG = O / geo->groups;
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * C * H * W;
        for (int32_t o = 0; o < O; o++) {
            const int32_t c0 = (o / OG) * CG;
            const int32_t wz = weight_zero_points ? weight_zero_points[o] : 0;
            for (int32_t oh = 0; oh < HO; oh++) {
                for (int32_t ow = 0; ow < WO; ow++) {
                    int32_t acc = 0;
                    for (int32_t c = 0; c < CG; c++)
                        acc += tte_window_dot_s8(x + (size_t)(c0 + c) * H * W, H, W,
                                                 oh * geo->stride_h - geo->pad_top, ow * geo->stride_w - geo->pad_left,
                                                 tte_weight_row(weights, 0, o, c, CG, KH * KW), KH, KW,
                                                 q->input_zero_point, wz);
                    const float v = tte_acc_to_float(acc, bias[o]) * multipliers[o];
                    const size_t idx = (((size_t)n * O + o) * HO + oh) * WO + ow;
                    output[idx] = tte_round_clamp_mask(v, q->output_zero_point, q->qmin, q->qmax, mask, idx);
                }
            }
        }
    }
    return TTE_OK;
}
