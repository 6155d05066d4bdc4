#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

int32_t tte_conv_grad_input_f32_get_buffer_size(const tte_dims *in_dims) {
    return (int32_t)sizeof(float) * in_dims->h * in_dims->w;
}

/* dx[n, c, h, w] = sum of dz[n, o, ho, wo] * W[o, c, i, j] over the output channels o of c's group
 * (ascending), then taps i, j (ascending), where ho * stride_h - pad_top + i = h (same for w).  Each
 * input plane is accumulated in that order into `scratch` (scattering every (o, i, j) term, which adds
 * to each element at most once) and then stored, so a depthwise conv may run in place (dx == dz). */
tte_status tte_conv_grad_input_f32(const tte_conv_geometry *geo, const tte_dims *w_dims, const tte_weights_s8 *w,
                                   const tte_dims *dz_dims, const float *dz, const tte_dims *in_dims, float *dx,
                                   float *scratch) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = dz_dims->h, WO = dz_dims->w, OG = O / geo->groups;
    const int32_t sh = geo->stride_h, sw = geo->stride_w;
    if (C != CG * geo->groups || dz_dims->c != O) return TTE_ERROR_ARGUMENT;
    const int32_t depthwise = CG == 1 && geo->groups == O;
    for (int32_t n = 0; n < in_dims->n; n++) {
        for (int32_t c = 0; c < C; c++) {
            const int32_t g = c / CG, cl = c % CG;
            memset(scratch, 0, sizeof(float) * (size_t)H * (size_t)W);
            for (int32_t o = g * OG; o < (g + 1) * OG; o++) {
                const float *dzo = dz + ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO;
                const int8_t *wo = tte_weight_row(&w->data, depthwise, o, cl, CG, KH * KW);
                const int32_t wz = w->zero_points ? w->zero_points[o] : 0;
                for (int32_t i = 0; i < KH; i++) {
                    int32_t ho0, ho1;
                    tte_out_range(i, sh, geo->pad_top, H, HO, &ho0, &ho1);
                    for (int32_t j = 0; j < KW; j++) {
                        int32_t wo0, wo1;
                        tte_out_range(j, sw, geo->pad_left, W, WO, &wo0, &wo1);
                        const float wr = (float)((int32_t)wo[i * KW + j] - wz) * w->scales[o];
                        for (int32_t ho = ho0; ho < ho1; ho++) {
                            float *row = scratch + (ho * sh - geo->pad_top + i) * W - geo->pad_left + j;
                            const float *dzr = dzo + ho * WO;
                            for (int32_t x = wo0; x < wo1; x++) row[x * sw] += dzr[x] * wr;
                        }
                    }
                }
            }
            memcpy(dx + ((size_t)n * (size_t)C + (size_t)c) * (size_t)H * (size_t)W, scratch,
                   sizeof(float) * (size_t)H * (size_t)W);
        }
    }
    return TTE_OK;
}
