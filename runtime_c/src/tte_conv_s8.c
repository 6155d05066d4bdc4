#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

/* 1x1, stride 1, unpadded, symmetric weights: acc = sum_c x * w - z_x * sum_c w, the same integer as
 * sum_c (x - z_x) * w with one multiply-accumulate per term.  Two output channels and two positions at a
 * time (tte_pw_acc2_s8: SMLAD with the Arm DSP extension), or two output channels and a run of positions
 * (tte_pw_run, the portable path: the compiler's vectors); a weight row is its trained channels then its frozen
 * ones. */
static tte_status tte_conv_pointwise_s8(const tte_quant_params *q, const tte_dims *in_dims, const int8_t *input,
                                        int32_t O, const tte_split_weights *weights, const int32_t *bias,
                                        const float *multipliers, int8_t *output, uint8_t *mask) {
    const int32_t C = in_dims->c, P = in_dims->h * in_dims->w;
    const int32_t CT = weights->frozen ? weights->channels : C, CF = C - CT;
    const size_t SP = (size_t)P;
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * SP;
        for (int32_t o = 0; o < O; o += 2) {
            const int32_t o1 = o + 1 < O ? o + 1 : o; /* an odd last row pairs with itself */
            const int8_t *t0 = weights->trained + (size_t)o * (size_t)CT;
            const int8_t *t1 = weights->trained + (size_t)o1 * (size_t)CT;
            const int8_t *f0 = weights->frozen ? weights->frozen + (size_t)o * (size_t)CF : t0;
            const int8_t *f1 = weights->frozen ? weights->frozen + (size_t)o1 * (size_t)CF : t1;
            int32_t wsum0 = 0, wsum1 = 0;
            for (int32_t c = 0; c < CT; c++) {
                wsum0 += t0[c];
                wsum1 += t1[c];
            }
            for (int32_t c = 0; c < CF; c++) {
                wsum0 += f0[c];
                wsum1 += f1[c];
            }
            const int32_t off0 = -q->input_zero_point * wsum0, off1 = -q->input_zero_point * wsum1;
            const tte_rq r0 = tte_rq_channel(q, bias, multipliers, o), r1 = tte_rq_channel(q, bias, multipliers, o1);
            int8_t *y0 = output + ((size_t)n * (size_t)O + (size_t)o) * SP;
            int8_t *y1 = output + ((size_t)n * (size_t)O + (size_t)o1) * SP;
            const size_t i0 = (size_t)(y0 - output), i1 = (size_t)(y1 - output);
            for (int32_t p = 0; p < P; p += TTE_PW_RUN) { /* a run of positions at a time, then its output stage */
                const int32_t run = P - p < TTE_PW_RUN ? P - p : TTE_PW_RUN;
                int32_t acc0[TTE_PW_RUN], acc1[TTE_PW_RUN];
                for (int32_t i = 0; i < run; i++) {
                    acc0[i] = off0;
                    acc1[i] = off1;
                }
#if defined(__ARM_FEATURE_DSP)
                tte_pw_acc2_s8(x + p, SP, t0, t1, CT, run, acc0, acc1); /* SMLAD, two rows x two positions */
                if (CF) tte_pw_acc2_s8(x + (size_t)CT * SP + (size_t)p, SP, f0, f1, CF, run, acc0, acc1);
#else
                tte_pw_run(x + p, SP, t0, o1 != o ? t1 : NULL, CT, 0, 0, acc0, acc1, run); /* the compiler's vectors */
                if (CF)
                    tte_pw_run(x + (size_t)CT * SP + (size_t)p, SP, f0, o1 != o ? f1 : NULL, CF, 0, 0, acc0, acc1, run);
#endif
                tte_rq_run(&r0, acc0, run, y0 + p, mask, i0 + (size_t)p);
                if (o1 != o) tte_rq_run(&r1, acc1, run, y1 + p, mask, i1 + (size_t)p);
            }
        }
    }
    return TTE_OK;
}

/* Direct convolution, any groups.  acc = sum (x - z_x) * (w - z_w[o]) over the window (padding reads
 * z_x, i.e. contributes 0), then bias, multiplier, rounding and clamp per tte_internal.h
 * (tte_rq_apply: float32 multipliers, or TFLite's Q31 ones in q). */
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
            const tte_rq r = tte_rq_channel(q, bias, multipliers, o);
            if (CG * KH * KW <= TTE_DW_FAST_TAPS) { /* the stem, small convs: its taps gathered, interior runs */
                int8_t wg[TTE_DW_FAST_TAPS];
                for (int32_t c = 0; c < CG; c++)
                    memcpy(wg + c * KH * KW, tte_weight_row(weights, 0, o, c, CG, KH * KW), (size_t)(KH * KW));
                tte_conv_plane_s8(x + (size_t)c0 * (size_t)H * (size_t)W, CG, H, W, wg, KH, KW, geo, HO, WO,
                                  q->input_zero_point, wz, &r,
                                  output + ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO, mask,
                                  ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO);
                continue;
            }
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
                    output[idx] = tte_rq_apply(&r, acc, mask, idx);
                }
            }
        }
    }
    return TTE_OK;
}
