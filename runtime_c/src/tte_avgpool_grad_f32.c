#include "tte_runtime.h"

/* share = dz / count per window; dx[h, w] = sum over taps (i, j) ascending of the share of the window
 * that tap (i, j) of reaches (h, w). */
tte_status tte_avgpool_grad_f32(const tte_pool_geometry *geo, int32_t count_include_pad, const tte_dims *dz_dims,
                                const float *dz, const tte_dims *in_dims, float *dx) {
    const int32_t H = in_dims->h, W = in_dims->w, HO = dz_dims->h, WO = dz_dims->w;
    for (int32_t nc = 0; nc < in_dims->n * in_dims->c; nc++) {
        for (int32_t h = 0; h < H; h++) {
            for (int32_t x = 0; x < W; x++) {
                float acc = 0.0f;
                for (int32_t i = 0; i < geo->kernel_h; i++) {
                    const int32_t th = h + geo->pad_top - i;
                    if (th < 0 || th % geo->stride_h || th / geo->stride_h >= HO) continue;
                    const int32_t ho = th / geo->stride_h;
                    for (int32_t j = 0; j < geo->kernel_w; j++) {
                        const int32_t tw = x + geo->pad_left - j;
                        if (tw < 0 || tw % geo->stride_w || tw / geo->stride_w >= WO) continue;
                        const int32_t wo = tw / geo->stride_w;
                        int32_t count = geo->kernel_h * geo->kernel_w;
                        if (!count_include_pad) {
                            count = 0;
                            for (int32_t a = 0; a < geo->kernel_h; a++)
                                for (int32_t b = 0; b < geo->kernel_w; b++) {
                                    const int32_t ih = ho * geo->stride_h - geo->pad_top + a;
                                    const int32_t iw = wo * geo->stride_w - geo->pad_left + b;
                                    count += ih >= 0 && ih < H && iw >= 0 && iw < W;
                                }
                        }
                        acc += dz[((size_t)nc * (size_t)HO + (size_t)ho) * (size_t)WO + (size_t)wo] / (float)count;
                    }
                }
                dx[((size_t)nc * (size_t)H + (size_t)h) * (size_t)W + (size_t)x] = acc;
            }
        }
    }
    return TTE_OK;
}
