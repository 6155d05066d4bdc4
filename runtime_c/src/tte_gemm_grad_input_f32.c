#include "tte_runtime.h"

/* dx[b, i] = sum over o (ascending) of dz[b, o] * W[o, i], TTE_GEMM_LANES columns i at a time: independent
 * elements in the lanes of a vector, each summing its terms in that order.  The last block of columns is the
 * full block that ends at k when there is room (some elements are computed twice, the same values). */
#define TTE_GEMM_LANES 16
tte_status tte_gemm_grad_input_f32(int32_t n, int32_t k, int32_t m, const float *dz, const tte_weights_s8 *w,
                                   float *dx) {
    for (int32_t b = 0; b < n; b++) {
        const float *dzb = dz + (size_t)b * (size_t)m;
        for (int32_t i = 0; i < k; i += TTE_GEMM_LANES) {
            if (k < TTE_GEMM_LANES) { /* narrower than a block: one element at a time */
                for (int32_t t = i; t < k; t++) {
                    float acc = 0.0f;
                    for (int32_t o = 0; o < m; o++) {
                        const int32_t wz = w->zero_points ? w->zero_points[o] : 0;
                        const float wr =
                            (float)((int32_t)w->data.trained[(size_t)o * (size_t)k + (size_t)t] - wz) * w->scales[o];
                        acc += dzb[o] * wr;
                    }
                    dx[(size_t)b * (size_t)k + (size_t)t] = acc;
                }
                break;
            }
            const int32_t i0 = k - i < TTE_GEMM_LANES ? k - TTE_GEMM_LANES : i;
            float acc[TTE_GEMM_LANES];
            for (int32_t t = 0; t < TTE_GEMM_LANES; t++) acc[t] = 0.0f;
            for (int32_t o = 0; o < m; o++) {
                const int32_t wz = w->zero_points ? w->zero_points[o] : 0;
                const int8_t *wo = w->data.trained + (size_t)o * (size_t)k + (size_t)i0;
                for (int32_t t = 0; t < TTE_GEMM_LANES; t++)
                    acc[t] += dzb[o] * ((float)((int32_t)wo[t] - wz) * w->scales[o]);
            }
            for (int32_t t = 0; t < TTE_GEMM_LANES; t++) dx[(size_t)b * (size_t)k + (size_t)(i0 + t)] = acc[t];
        }
    }
    return TTE_OK;
}
