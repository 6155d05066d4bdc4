#include "tte_internal.h"
#include "tte_runtime.h"

/* 1x1, stride 1, unpadded, symmetric weights: acc = sum_c x * w - z_x * sum_c w, the same integer as
 * sum_c (x - z_x) * w with one multiply-accumulate per term. */
static tte_status tte_conv_pointwise_s8(const tte_quant_params *q, const tte_dims *in_dims, const int8_t *input,
                                        int32_t O, const tte_split_weights *weights, const int32_t *bias,
                                        const float *multipliers, int8_t *output, uint8_t *mask) {
    const int32_t C = in_dims->c, P = in_dims->h * in_dims->w;
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * (size_t)P;
        for (int32_t o = 0; o < O; o++) {
            int32_t wsum = 0;
            for (int32_t c = 0; c < C; c++) wsum += *tte_weight_row(weights, 0, o, c, C, 1);
            const int32_t offset = -q->input_zero_point * wsum;
            for (int32_t p = 0; p < P; p++) {
                int32_t acc = offset;
                const int8_t *xp = x + p;
                if (weights->frozen == NULL) {
                    const int8_t *w = weights->trained + (size_t)o * (size_t)C;
                    for (int32_t c = 0; c < C; c++) acc += (int32_t)xp[(size_t)c * (size_t)P] * (int32_t)w[c];
                } else {
                    for (int32_t c = 0; c < C; c++)
                        acc += (int32_t)xp[(size_t)c * (size_t)P] * (int32_t)*tte_weight_row(weights, 0, o, c, C, 1);
                }
                const size_t idx = (((size_t)n * (size_t)O + (size_t)o) * (size_t)P) + (size_t)p;
                output[idx] = tte_requantize_channel(acc, bias[o], q, multipliers, o, mask, idx);
            }
        }
    }
    return TTE_OK;
}

/* Direct convolution, any groups.  acc = sum (x - z_x) * (w - z_w[o]) over the window (padding reads
 * z_x, i.e. contributes 0), then bias, multiplier, rounding and clamp per tte_internal.h
 * (tte_requantize_channel: float32 multipliers, or TFLite's Q31 ones in q). */
tte_status tte_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                       const int8_t *input, const tte_dims *w_dims, const tte_split_weights *weights,
                       const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                       const tte_dims *out_dims, int8_t *output, uint8_t *mask) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = out_dims->h, WO = out_dims->w;
    if (geo->groups < 1 || C != CG * geo->groups || O % geo->groups || out_dims->c != O) return TTE_ERROR_ARGUMENT;
    const int32_t OG = O / geo->groups;
    if (KH == 1 && KW == 1 && geo->groups == 1 && geo->stride_h == 1 && geo->stride_w == 1 && !geo->pad_top &&
        !geo->pad_left && !geo->pad_bottom && !geo->pad_right && weight_zero_points == NULL)
        return tte_conv_pointwise_s8(q, in_dims, input, O, weights, bias, multipliers, output, mask);
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * (size_t)H * (size_t)W;
        for (int32_t o = 0; o < O; o++) {
            const int32_t c0 = (o / OG) * CG;
            const int32_t wz = weight_zero_points ? weight_zero_points[o] : 0;
            for (int32_t oh = 0; oh < HO; oh++) {
                for (int32_t ow = 0; ow < WO; ow++) {
                    int32_t acc = 0;
                    for (int32_t c = 0; c < CG; c++)
                        acc += tte_window_dot_s8(x + (size_t)(c0 + c) * (size_t)H * (size_t)W, H, W,
                                                 oh * geo->stride_h - geo->pad_top, ow * geo->stride_w - geo->pad_left,
                                                 tte_weight_row(weights, 0, o, c, CG, KH * KW), KH, KW,
                                                 q->input_zero_point, wz);
                    const size_t idx = (((size_t)n * (size_t)O + (size_t)o) * (size_t)HO + (size_t)oh) * (size_t)WO +
                                       (size_t)ow;
                    output[idx] = tte_requantize_channel(acc, bias[o], q, multipliers, o, mask, idx);
                }
            }
        }
    }
    return TTE_OK;
}
