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

/* A pointwise conv (1x1, stride 1, no padding, one group) trains a matrix dW[o, c], each element the sum over
 * samples, then positions p (ascending) of dz[n, o, p] * x[n, c, p].  It is computed a tile of TTE_WG_TILE_O output
 * x TTE_WG_TILE_C input channels at a time whose accumulators stay in registers while n and p run (a host's
 * vector registers hold 16 x 8; a Cortex-M's 32 single-precision registers 8 x 3, beside the 3 converted x values:
 * a dz value is one load, an x value a conversion of four instructions). */
#if defined(__arm__)
#define TTE_WG_TILE_O 8
#define TTE_WG_TILE_C 3
#else
#define TTE_WG_TILE_O 16
#define TTE_WG_TILE_C 8
#endif

static inline int tte_pointwise_weight_grad(const tte_conv_geometry *geo, int32_t depthwise, const tte_dims *x_dims,
                                            const tte_dims *dz_dims, const tte_dims *w_dims) {
    return !depthwise && geo->groups == 1 && w_dims->h == 1 && w_dims->w == 1 && geo->stride_h == 1 &&
           geo->stride_w == 1 && geo->pad_top == 0 && geo->pad_left == 0 && dz_dims->h == x_dims->h &&
           dz_dims->w == x_dims->w;
}

/* The tile of dW whose first element is [o, c] into g.  The innermost loop runs across input channels j,
 * independent elements, so the compiler gives each its own vector lane while every element still adds its terms
 * one at a time in the reference's order (no reassociation); each dz value is loaded once per tile and broadcast,
 * each x value converted once per tile. */
static inline void tte_pw_weight_grad_tile(const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                           const float *dz, int32_t o, int32_t c,
                                           float g[TTE_WG_TILE_O][TTE_WG_TILE_C]) {
    const int32_t P = x_dims->h * x_dims->w, zx = x->zero_point;
    const float sx = x->scale;
    float acc[TTE_WG_TILE_O][TTE_WG_TILE_C]; /* a local array: registers, not memory that dz or x might alias */
    TTE_ARM_UNROLL
    for (int32_t i = 0; i < TTE_WG_TILE_O; i++) {
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < TTE_WG_TILE_C; j++) acc[i][j] = 0.0f;
    }
    for (int32_t n = 0; n < x_dims->n; n++) {
        const float *dzp = dz + ((size_t)n * (size_t)dz_dims->c + (size_t)o) * (size_t)P;
        const int8_t *xp = x->data + ((size_t)n * (size_t)x_dims->c + (size_t)c) * (size_t)P;
        for (int32_t p = 0; p < P; p++, dzp++, xp++) {
            float xv[TTE_WG_TILE_C];
            TTE_ARM_UNROLL
            for (int32_t j = 0; j < TTE_WG_TILE_C; j++) xv[j] = (float)((int32_t)xp[(size_t)j * (size_t)P] - zx) * sx;
            TTE_ARM_UNROLL
            for (int32_t i = 0; i < TTE_WG_TILE_O; i++) {
                const float d = dzp[(size_t)i * (size_t)P];
                TTE_ARM_UNROLL
                for (int32_t j = 0; j < TTE_WG_TILE_C; j++) acc[i][j] = tte_mla_f32(acc[i][j], d, xv[j]);
            }
        }
    }
    TTE_ARM_UNROLL
    for (int32_t i = 0; i < TTE_WG_TILE_O; i++) {
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < TTE_WG_TILE_C; j++) g[i][j] = acc[i][j];
    }
}

/* The same for a part of a tile, no x nc elements (fewer than a tile's rows or columns in all). */
static inline void tte_pw_weight_grad_edge(const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                           const float *dz, int32_t o, int32_t no, int32_t c, int32_t nc,
                                           float g[TTE_WG_TILE_O][TTE_WG_TILE_C]) {
    const int32_t P = x_dims->h * x_dims->w;
    float acc[TTE_WG_TILE_O][TTE_WG_TILE_C];
    for (int32_t i = 0; i < no; i++)
        for (int32_t j = 0; j < nc; j++) acc[i][j] = 0.0f;
    for (int32_t n = 0; n < x_dims->n; n++) {
        const float *dzn = dz + ((size_t)n * (size_t)dz_dims->c + (size_t)o) * (size_t)P;
        const int8_t *xn = x->data + ((size_t)n * (size_t)x_dims->c + (size_t)c) * (size_t)P;
        for (int32_t p = 0; p < P; p++) {
            for (int32_t j = 0; j < nc; j++) {
                const float xv = (float)((int32_t)xn[(size_t)j * (size_t)P + (size_t)p] - x->zero_point) * x->scale;
                for (int32_t i = 0; i < no; i++)
                    acc[i][j] = tte_mla_f32(acc[i][j], dzn[(size_t)i * (size_t)P + (size_t)p], xv);
            }
        }
    }
    for (int32_t i = 0; i < no; i++)
        for (int32_t j = 0; j < nc; j++) g[i][j] = acc[i][j];
}

/* dW of the block [o, o + no) x [c, c + nc) (at most a tile) of a pointwise conv's rows x cols trained elements
 * into g[i][j].  A block at the end of the rows or columns is computed as the full tile that ends where it ends
 * when there is room: its first elements are computed again (the same values) and dropped. */
static inline void tte_pw_weight_grad_block(const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                            const float *dz, int32_t rows, int32_t cols, int32_t o, int32_t no,
                                            int32_t c, int32_t nc, float g[TTE_WG_TILE_O][TTE_WG_TILE_C]) {
    if (rows < TTE_WG_TILE_O || cols < TTE_WG_TILE_C) {
        tte_pw_weight_grad_edge(x_dims, x, dz_dims, dz, o, no, c, nc, g);
        return;
    }
    if (no == TTE_WG_TILE_O && nc == TTE_WG_TILE_C) {
        tte_pw_weight_grad_tile(x_dims, x, dz_dims, dz, o, c, g);
        return;
    }
    const int32_t to = o + no - TTE_WG_TILE_O, tc = c + nc - TTE_WG_TILE_C;
    float t[TTE_WG_TILE_O][TTE_WG_TILE_C];
    tte_pw_weight_grad_tile(x_dims, x, dz_dims, dz, to, tc, t);
    for (int32_t i = 0; i < no; i++)
        for (int32_t j = 0; j < nc; j++) g[i][j] = t[o - to + i][c - tc + j];
}

/* sum over samples, then positions (ascending) of dz[n, o, :]. */
static inline float tte_bias_grad_row(const tte_dims *dz_dims, const float *dz, int32_t o) {
    const int32_t O = dz_dims->c, P = dz_dims->h * dz_dims->w;
    float acc = 0.0f;
    for (int32_t n = 0; n < dz_dims->n; n++)
        for (int32_t p = 0; p < P; p++) acc += dz[((size_t)n * (size_t)O + (size_t)o) * (size_t)P + (size_t)p];
    return acc;
}

/* The same for TTE_BIAS_BLOCK channels o, o + 1, ... at once: one sum per lane, each in its own order, so that the
 * additions of different channels overlap instead of waiting on each other. */
#define TTE_BIAS_BLOCK 8
static inline void tte_bias_grad_block(const tte_dims *dz_dims, const float *dz, int32_t o,
                                       float out[TTE_BIAS_BLOCK]) {
    const int32_t O = dz_dims->c, P = dz_dims->h * dz_dims->w;
    float acc[TTE_BIAS_BLOCK];
    for (int32_t k = 0; k < TTE_BIAS_BLOCK; k++) acc[k] = 0.0f;
    for (int32_t n = 0; n < dz_dims->n; n++) {
        const float *dzn = dz + ((size_t)n * (size_t)O + (size_t)o) * (size_t)P;
        for (int32_t p = 0; p < P; p++)
            for (int32_t k = 0; k < TTE_BIAS_BLOCK; k++) acc[k] += dzn[(size_t)k * (size_t)P + (size_t)p];
    }
    for (int32_t k = 0; k < TTE_BIAS_BLOCK; k++) out[k] = acc[k];
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

/* The gemm kernels work TTE_GEMM_LANES columns i at a time: independent elements in the lanes of a vector, each
 * summing its terms in the reference's order. */
#define TTE_GEMM_LANES 16

/* tte_gemm_weight_grad for columns i .. i + ni - 1 (ni at most TTE_GEMM_LANES) of row o, of `channels` columns in
 * all, into g.  A block at the end is computed as the full block that ends where it ends when there is room: its
 * first elements are computed again (the same values) and dropped. */
static inline void tte_gemm_weight_grad_block(int32_t n, int32_t k, int32_t m, int32_t channels,
                                              const tte_saved_s8 *x, const float *dz, int32_t o, int32_t i,
                                              int32_t ni, float g[TTE_GEMM_LANES]) {
    if (channels < TTE_GEMM_LANES) {
        for (int32_t t = 0; t < ni; t++) g[t] = tte_gemm_weight_grad(n, k, m, x, dz, o, i + t);
        return;
    }
    const int32_t i0 = i + ni - TTE_GEMM_LANES; /* = i for a full block */
    float acc[TTE_GEMM_LANES];
    for (int32_t t = 0; t < TTE_GEMM_LANES; t++) acc[t] = 0.0f;
    for (int32_t b = 0; b < n; b++) {
        const float d = dz[(size_t)b * (size_t)m + (size_t)o];
        const int8_t *xb = x->data + (size_t)b * (size_t)k + (size_t)i0;
        for (int32_t t = 0; t < TTE_GEMM_LANES; t++)
            acc[t] += d * ((float)((int32_t)xb[t] - x->zero_point) * x->scale);
    }
    for (int32_t t = 0; t < ni; t++) g[t] = acc[i - i0 + t];
}

#endif /* TTE_GRAD_CORE_H */
