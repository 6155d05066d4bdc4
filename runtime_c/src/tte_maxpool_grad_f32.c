#include <string.h>

#include "tte_runtime.h"

/* Each window's gradient goes to its first maximum (row-major; padding never wins), windows in row-major
 * order. */
tte_status tte_maxpool_grad_f32(const tte_pool_geometry *geo, const tte_dims *in_dims, const int8_t *input,
                                const tte_dims *dz_dims, const float *dz, float *dx) {
    const int32_t H = in_dims->h, W = in_dims->w, HO = dz_dims->h, WO = dz_dims->w;
    memset(dx, 0, sizeof(float) * (size_t)in_dims->n * (size_t)in_dims->c * (size_t)H * (size_t)W);
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        const int8_t *x = input + (size_t)nc * (size_t)H * (size_t)W;
        for (int32_t oh = 0; oh < HO; oh++) {
            for (int32_t ow = 0; ow < WO; ow++) {
                int32_t best = -129, at = -1;
                for (int32_t i = 0; i < geo->kernel_h; i++) {
                    const int32_t ih = oh * geo->stride_h - geo->pad_top + i;
                    for (int32_t j = 0; j < geo->kernel_w; j++) {
                        const int32_t iw = ow * geo->stride_w - geo->pad_left + j;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        if (x[ih * W + iw] > best) {
                            best = x[ih * W + iw];
                            at = ih * W + iw;
                        }
                    }
                }
                if (at >= 0)
                    dx[(size_t)nc * (size_t)H * (size_t)W + (size_t)at] +=
                        dz[((size_t)nc * (size_t)HO + (size_t)oh) * (size_t)WO + (size_t)ow];
            }
        }
    }
    return TTE_OK;
}
