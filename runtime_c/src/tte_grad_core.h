/* Gradient loops shared by the fused update kernels and the standalone gradient kernels. */
#ifndef TTE_GRAD_CORE_H
#define TTE_GRAD_CORE_H

#include "tte_internal.h"
#include "tte_runtime.h"

/* dW of output row o (depthwise: channel o) for its first `cols` input channels into out[cols][KH][KW]:
 * the sum over n, ho, wo (ascending) of dz[n, o, ho, wo] * x[n, c, ih, iw], padding skipped. */
static inline void tte_conv_weight_grad_row(const tte_conv_geometry *geo, int32_t depthwise, int32_t cols, int32_t o,
                                            const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                            const float *dz, const tte_dims *w_dims, float *out) {
    const int32_t C = x_dims->c, H = x_dims->h, W = x_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = dz_dims->h, WO = dz_dims->w, OG = O / geo->groups;
    const int32_t c0 = depthwise ? o : (o / OG) * CG;
    for (int32_t cl = 0; cl < cols; cl++) {
        for (int32_t i = 0; i < KH; i++) {
            for (int32_t j = 0; j < KW; j++) {
                int32_t ho0, ho1, wo0, wo1;
                tte_out_range(i, geo->stride_h, geo->pad_top, H, HO, &ho0, &ho1);
                tte_out_range(j, geo->stride_w, geo->pad_left, W, WO, &wo0, &wo1);
                float acc = 0.0f;
                for (int32_t n = 0; n < x_dims->n; n++) {
                    const float *dzo = dz + ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO;
                    const int8_t *xc =
                        x->data + ((size_t)n * (size_t)C + (size_t)c0 + (size_t)cl) * (size_t)H * (size_t)W;
                    for (int32_t ho = ho0; ho < ho1; ho++) {
                        const int8_t *xr = xc + (ho * geo->stride_h - geo->pad_top + i) * W - geo->pad_left + j;
                        const float *dzr = dzo + ho * WO;
                        for (int32_t wo = wo0; wo < wo1; wo++) {
                            const float xv = (float)((int32_t)xr[wo * geo->stride_w] - x->zero_point) * x->scale;
                            acc += dzr[wo] * xv;
                        }
                    }
                }
                out[(cl * KH + i) * KW + j] = acc;
            }
        }
    }
}

/* sum over samples, then positions (ascending) of dz[n, o, :]. */
static inline float tte_bias_grad_row(const tte_dims *dz_dims, const float *dz, int32_t o) {
    const int32_t O = dz_dims->c, P = dz_dims->h * dz_dims->w;
    float acc = 0.0f;
    for (int32_t n = 0; n < dz_dims->n; n++)
        for (int32_t p = 0; p < P; p++) acc += dz[((size_t)n * (size_t)O + (size_t)o) * (size_t)P + (size_t)p];
    return acc;
}

/* sum over samples (ascending) of dz[b, o] * x[b, i]. */
static inline float tte_gemm_weight_grad(int32_t n, int32_t k, int32_t m, const tte_saved_s8 *x, const float *dz,
                                         int32_t o, int32_t i) {
    float acc = 0.0f;
    for (int32_t b = 0; b < n; b++) {
        const float xr = (float)((int32_t)x->data[(size_t)b * (size_t)k + (size_t)i] - x->zero_point) * x->scale;
        acc += dz[(size_t)b * (size_t)m + (size_t)o] * xr;
    }
    return acc;
}

#endif /* TTE_GRAD_CORE_H */
