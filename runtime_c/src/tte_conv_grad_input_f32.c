#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

int32_t tte_conv_grad_input_f32_get_buffer_size(const tte_dims *in_dims) {
    return (int32_t)sizeof(float) * in_dims->h * in_dims->w;
}

/* Gather form: dx[n, c, h, w] = sum over o in c's group, then taps i, j (ascending) of
 * dz[n, o, ho, wo] * W[o, c, i, j] where h + pad_top - i = ho * stride_h (same for w).  Each input plane is
 * computed into `scratch` and then stored, so a depthwise conv may run in place (dx == dz). */
tte_status tte_conv_grad_input_f32(const tte_conv_geometry *geo, const tte_dims *w_dims, const tte_weights_s8 *w,
                                   const tte_dims *dz_dims, const float *dz, const tte_dims *in_dims, float *dx,
                                   float *scratch) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = dz_dims->h, WO = dz_dims->w, OG = O / geo->groups;
    if (C != CG * geo->groups || dz_dims->c != O) return TTE_ERROR_ARGUMENT;
    for (int32_t n = 0; n < in_dims->n; n++) {
        for (int32_t c = 0; c < C; c++) {
            const int32_t g = c / CG, cl = c % CG;
            for (int32_t h = 0; h < H; h++) {
                for (int32_t x = 0; x < W; x++) {
                    float acc = 0.0f;
                    for (int32_t o = g * OG; o < (g + 1) * OG; o++) {
                        const float *dzo = dz + ((size_t)n * O + o) * HO * WO;
                        const int8_t *wo = tte_weight_row(&w->data, CG == 1 && geo->groups == O, o, cl, CG, KH * KW);
                        const int32_t wz = w->zero_points ? w->zero_points[o] : 0;
                        for (int32_t i = 0; i < KH; i++) {
                            const int32_t th = h + geo->pad_top - i;
                            if (th < 0 || th % geo->stride_h) continue;
                            const int32_t ho = th / geo->stride_h;
                            if (ho >= HO) continue;
                            for (int32_t j = 0; j < KW; j++) {
                                const int32_t tw = x + geo->pad_left - j;
                                if (tw < 0 || tw % geo->stride_w) continue;
                                const int32_t wo_ = tw / geo->stride_w;
                                if (wo_ >= WO) continue;
                                const float wr = (float)((int32_t)wo[i * KW + j] - wz) * w->scales[o];
                                acc += dzo[ho * WO + wo_] * wr;
                            }
                        }
                    }
                    scratch[h * W + x] = acc;
                }
            }
            memcpy(dx + ((size_t)n * C + c) * H * W, scratch, sizeof(float) * (size_t)H * W);
        }
    }
    return TTE_OK;
}
