#include <string.h>

#include "tte_grad_core.h"
#include "tte_sgd_core.h"

/* The expanded channels go `group` at a time; their planes are laid out [sample][channel of the group][position] in
 * scratch: the depthwise output's gradient g2, then pw1's output gradient g1. */
int32_t tte_block_backward_f32_get_buffer_size(const tte_dims *dz2_dims, const tte_dims *mid_dims, int32_t pw1_stage,
                                               int32_t group) {
    return (int32_t)sizeof(float) * dz2_dims->n * group *
           (dz2_dims->h * dz2_dims->w + (pw1_stage ? mid_dims->h * mid_dims->w : 0));
}

/* A tile of the depthwise output's gradient: TTE_BB_TILE_C channels x TTE_BB_TILE_P positions whose accumulators stay
 * in registers while pw2's output channels o run (as tte_conv_grad_input_f32's pointwise tiles). */
#if defined(__arm__)
#define TTE_BB_TILE_C 1 /* groups are often of 1 to 3 channels: full tiles for any group */
#define TTE_BB_TILE_P 8
#else
#define TTE_BB_TILE_C 8
#define TTE_BB_TILE_P 16
#endif

static inline uint32_t mask_bit(const uint8_t *mask, size_t i) { return ((uint32_t)mask[i >> 3] >> (i & 7u)) & 1u; }

/* W[o, c] of a pointwise weight in real units: (w - z[o]) * s[o]. */
static inline float pointwise_real(const tte_block_conv *layer, int32_t o, int32_t c) {
    const tte_weights_s8 *w = layer->w;
    const int32_t z = w->zero_points ? w->zero_points[o] : 0;
    return (float)((int32_t)*tte_weight_row(&w->data, 0, o, c, layer->w_dims->c, 1) - z) * w->scales[o];
}

static inline float saved_real(const tte_saved_s8 *x, size_t i) {
    return (float)((int32_t)x->data[i] - x->zero_point) * x->scale;
}

/* The geometry of one call, shared by the steps below. */
typedef struct {
    int32_t N, C, O, K;    /* samples, expanded channels, pw2's output channels, pw1's input channels */
    int32_t P1, P2;        /* positions of pw1's output (dw's input) and of dw's output */
    int32_t c0, G;         /* the group: channels c0 .. c0 + G - 1 */
    const tte_dims *mid;   /* [N, C, H1, W1] */
    const tte_dims *out;   /* [N, C, H2, W2] */
} block_geometry;

/* g2[n][j][q + i] for the group's channels j0 .. j0 + nc - 1 and positions q .. q + np - 1: the sum over o
 * (ascending, from 0) of dz2[n, o, q + i] * W2[o, c0 + j] (tte_conv_grad_input_f32's pointwise order).  The full
 * tile has constant bounds (vector lanes across positions); an edge, runtime ones. */
static void dw_output_tile(const block_geometry *b, const float *dz2, const tte_block_conv *pw2, int32_t n,
                           int32_t j0, int32_t q, float *g2) {
    float acc[TTE_BB_TILE_C][TTE_BB_TILE_P];
    TTE_ARM_UNROLL
    for (int32_t j = 0; j < TTE_BB_TILE_C; j++) {
        TTE_ARM_UNROLL
        for (int32_t i = 0; i < TTE_BB_TILE_P; i++) acc[j][i] = 0.0f;
    }
    for (int32_t o = 0; o < b->O; o++) {
        const float *dzo = dz2 + ((size_t)n * (size_t)b->O + (size_t)o) * (size_t)b->P2 + (size_t)q;
        float d[TTE_BB_TILE_P];
        TTE_ARM_UNROLL
        for (int32_t i = 0; i < TTE_BB_TILE_P; i++) d[i] = dzo[i];
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < TTE_BB_TILE_C; j++) {
            const float wr = pointwise_real(pw2, o, b->c0 + j0 + j);
            TTE_ARM_UNROLL
            for (int32_t i = 0; i < TTE_BB_TILE_P; i++) acc[j][i] = tte_mla_f32(acc[j][i], d[i], wr);
        }
    }
    TTE_ARM_UNROLL
    for (int32_t j = 0; j < TTE_BB_TILE_C; j++) {
        TTE_ARM_UNROLL
        for (int32_t i = 0; i < TTE_BB_TILE_P; i++)
            g2[((size_t)n * (size_t)b->G + (size_t)(j0 + j)) * (size_t)b->P2 + (size_t)(q + i)] = acc[j][i];
    }
}

static void dw_output_edge(const block_geometry *b, const float *dz2, const tte_block_conv *pw2, int32_t n,
                           int32_t j0, int32_t nc, int32_t q, int32_t np, float *g2) {
    float acc[TTE_BB_TILE_C][TTE_BB_TILE_P];
    for (int32_t j = 0; j < nc; j++)
        for (int32_t i = 0; i < np; i++) acc[j][i] = 0.0f;
    for (int32_t o = 0; o < b->O; o++) {
        const float *dzo = dz2 + ((size_t)n * (size_t)b->O + (size_t)o) * (size_t)b->P2 + (size_t)q;
        for (int32_t j = 0; j < nc; j++) {
            const float wr = pointwise_real(pw2, o, b->c0 + j0 + j);
            for (int32_t i = 0; i < np; i++) acc[j][i] = tte_mla_f32(acc[j][i], dzo[i], wr);
        }
    }
    for (int32_t j = 0; j < nc; j++)
        for (int32_t i = 0; i < np; i++)
            g2[((size_t)n * (size_t)b->G + (size_t)(j0 + j)) * (size_t)b->P2 + (size_t)(q + i)] = acc[j][i];
}

/* The group's planes of the depthwise output's gradient.  At the end of the positions the last full tile overlaps the
 * one before and computes some elements again: the same values. */
static void dw_output_grads(const block_geometry *b, const float *dz2, const tte_block_conv *pw2, float *g2) {
    for (int32_t n = 0; n < b->N; n++) {
        for (int32_t j0 = 0; j0 < b->G; j0 += TTE_BB_TILE_C) {
            const int32_t nc = b->G - j0 < TTE_BB_TILE_C ? b->G - j0 : TTE_BB_TILE_C;
            for (int32_t p = 0; p < b->P2; p += TTE_BB_TILE_P) {
                if (nc == TTE_BB_TILE_C && b->P2 >= TTE_BB_TILE_P) {
                    dw_output_tile(b, dz2, pw2, n, j0, b->P2 - p >= TTE_BB_TILE_P ? p : b->P2 - TTE_BB_TILE_P, g2);
                } else {
                    const int32_t np = b->P2 - p < TTE_BB_TILE_P ? b->P2 - p : TTE_BB_TILE_P;
                    dw_output_edge(b, dz2, pw2, n, j0, nc, p, np, g2);
                }
            }
        }
    }
}

/* Where the mask of a [N, C, P] tensor is clear for the group's channels, the planes [N][G][P] become 0
 * (tte_ste_f32): a select, no branch on the (random) mask bits. */
static void apply_mask(const block_geometry *b, const uint8_t *mask, int32_t P, float *planes) {
    for (int32_t n = 0; n < b->N; n++) {
        for (int32_t j = 0; j < b->G; j++) {
            const size_t base = ((size_t)n * (size_t)b->C + (size_t)(b->c0 + j)) * (size_t)P;
            float *plane = planes + ((size_t)n * (size_t)b->G + (size_t)j) * (size_t)P;
            int32_t p = 0;
            if ((base & 7u) == 0) /* eight values per mask byte, a constant trip count the compiler vectorizes */
                for (; p + 8 <= P; p += 8) {
                    const uint32_t bits = mask[(base + (size_t)p) >> 3];
                    for (int32_t k = 0; k < 8; k++) plane[p + k] = (bits >> k) & 1u ? plane[p + k] : 0.0f;
                }
            for (; p < P; p++) plane[p] = mask_bit(mask, base + (size_t)p) ? plane[p] : 0.0f;
        }
    }
}

/* The group's biases take their steps: for channel j the sum over samples, then positions (ascending) of its planes
 * (tte_bias_update_s32). */
static void bias_steps(const block_geometry *b, const tte_block_conv *layer, const float *planes, int32_t P) {
    for (int32_t j = 0; j < b->G; j++) {
        float acc = 0.0f;
        for (int32_t n = 0; n < b->N; n++) {
            const float *plane = planes + ((size_t)n * (size_t)b->G + (size_t)j) * (size_t)P;
            for (int32_t p = 0; p < P; p++) acc += plane[p];
        }
        const int32_t c = b->c0 + j;
        layer->bias[c] = (int32_t)tte_sgd_value(layer->bias_sgd, layer->bias[c], acc, layer->bias_factors[c],
                                                (uint32_t)c);
    }
}

/* pw2's weight gradient block [o, o + no) x [k, k + nk) (tte_pw_weight_grad_block: for each element the sum over
 * samples, then positions, ascending, of dz2 * x2) applied with SGD at once, as tte_conv_weight_update_s8 does. */
static void pw2_steps(const tte_block_conv *layer, const tte_dims *x_dims, const tte_dims *dz_dims, const float *dz,
                      int32_t rows, int32_t o, int32_t no, int32_t k, int32_t nk) {
    const int32_t cols = layer->channels;
    const tte_sgd_params sg = *layer->weight_sgd; /* a local copy: the int8 stores cannot change it */
    float g[TTE_WG_TILE_O][TTE_WG_TILE_C];
    /* a part of a tile that has no full tile ending where it ends (at the start of a group) is computed as an edge */
    tte_pw_weight_grad_block(x_dims, layer->x, dz_dims, dz, o + no >= TTE_WG_TILE_O ? rows : no,
                             k + nk >= TTE_WG_TILE_C ? cols : nk, o, no, k, nk, g);
    for (int32_t i = 0; i < no; i++) {
        for (int32_t j = 0; j < nk; j++) {
            const int32_t index = (o + i) * cols + k + j;
            layer->weights[index] = (int8_t)tte_sgd_value(&sg, layer->weights[index], g[i][j],
                                                          layer->weight_factors[o + i], (uint32_t)index);
        }
    }
}

/* pw2's trained weight columns among the group's channels (rows: pw2's output channels, from dz2 and the saved
 * depthwise output). */
static void pw2_column_steps(const block_geometry *b, const tte_dims *dz2_dims, const float *dz2,
                             const tte_block_conv *pw2) {
    const int32_t end = b->c0 + b->G < pw2->channels ? b->c0 + b->G : pw2->channels;
    const tte_dims *x_dims = b->out;
    for (int32_t k = b->c0; k < end; k += TTE_WG_TILE_C) {
        const int32_t nk = end - k < TTE_WG_TILE_C ? end - k : TTE_WG_TILE_C;
        for (int32_t o = 0; o < b->O; o += TTE_WG_TILE_O) {
            const int32_t no = b->O - o < TTE_WG_TILE_O ? b->O - o : TTE_WG_TILE_O;
            pw2_steps(pw2, x_dims, dz2_dims, dz2, b->O, o, no, k, nk);
        }
    }
}

/* dw's trained weight row of group channel j: for each tap the sum over samples, output rows, columns (ascending) of
 * g2[n, ho, wo] * x[n, c, ih, iw], padding skipped (tte_conv_weight_grad_row, on the group's g2 as the output
 * gradient of G channels and the saved input from channel c0 on: channel j of both), applied at once. */
static void dw_row_step(const block_geometry *b, const tte_conv_geometry *geo, const tte_block_conv *dw,
                        const float *g2, int32_t j) {
    const int32_t KH = dw->w_dims->h, KW = dw->w_dims->w, c = b->c0 + j;
    const tte_saved_s8 x = {dw->x->data + (size_t)b->c0 * (size_t)b->mid->h * (size_t)b->mid->w, dw->x->zero_point,
                            dw->x->scale};
    const tte_dims group = {b->G, 1, KH, KW};
    const tte_sgd_params sg = *dw->weight_sgd;
    float grad[TTE_BLOCK_MAX_TAPS * TTE_BLOCK_MAX_TAPS];
    tte_conv_weight_grad_row(geo, 1, 1, j, b->mid, &x, b->out, g2, &group, grad);
    for (int32_t k = 0; k < KH * KW; k++) {
        const int32_t index = c * KH * KW + k;
        dw->weights[index] =
            (int8_t)tte_sgd_value(&sg, dw->weights[index], grad[k], dw->weight_factors[c], (uint32_t)index);
    }
}

/* g1[n][j] = pw1's output gradient of group channel j: for each element the sum over the taps (i, t), ascending, that
 * reach it of g2[n, ho, wo] * Wdw[c, i, t] (tte_conv_grad_input_f32's order), TTE_BB_LANES neighbouring columns of
 * a row at a time, one element per lane: for each tap row that reaches the row, the g2 values its lanes read for all
 * taps t are gathered into a window first, zeros where tap t does not reach a lane's element; adding 0 * W (W
 * finite) changes no sum (a sum that starts at +0 is never -0, and +-0 added to anything else leaves it as it is),
 * so each element still adds the terms of the taps that reach it in order. */
#if defined(__arm__)
#define TTE_BB_LANES 4
#else
#define TTE_BB_LANES 8
#endif

static void dw_input_grad(const block_geometry *b, const tte_conv_geometry *geo, const tte_block_conv *dw,
                          const float *g2, int32_t j, float *g1) {
    const int32_t KH = dw->w_dims->h, KW = dw->w_dims->w, H = b->mid->h, W = b->mid->w;
    const int32_t HO = b->out->h, WO = b->out->w, sh = geo->stride_h, sw = geo->stride_w, c = b->c0 + j;
    const int8_t *wc = tte_weight_row(&dw->w->data, 1, c, 0, 1, KH * KW);
    const int32_t z = dw->w->zero_points ? dw->w->zero_points[c] : 0;
    float wr[TTE_BLOCK_MAX_TAPS * TTE_BLOCK_MAX_TAPS];
    for (int32_t t = 0; t < KH * KW; t++) wr[t] = (float)((int32_t)wc[t] - z) * dw->w->scales[c];
    for (int32_t n = 0; n < b->N; n++) {
        float *out = g1 + ((size_t)n * (size_t)b->G + (size_t)j) * (size_t)b->P1;
        const float *gn = g2 + ((size_t)n * (size_t)b->G + (size_t)j) * (size_t)b->P2;
        for (int32_t w0 = 0; w0 < W; w0 += TTE_BB_LANES) {
            /* window q holds g2 column wo at q = wo * sw - base (the columns wo in [wo0, wo1) that some lane's tap
             * reads); lane l, tap t reads q = l + KW - 1 - t; the other places stay zero */
            const int32_t base = w0 + geo->pad_left - (KW - 1), top = base + TTE_BB_LANES + KW - 2;
            int32_t wo0 = base <= 0 ? 0 : (base + sw - 1) / sw, wo1 = top < 0 ? 0 : top / sw + 1;
            if (wo1 > WO) wo1 = WO;
            float win[TTE_BB_LANES + TTE_BLOCK_MAX_TAPS - 1];
            for (int32_t q = 0; q < TTE_BB_LANES + TTE_BLOCK_MAX_TAPS - 1; q++) win[q] = 0.0f;
            const int32_t lanes = W - w0 < TTE_BB_LANES ? W - w0 : TTE_BB_LANES;
            for (int32_t h = 0; h < H; h++) {
                float acc[TTE_BB_LANES];
                TTE_ARM_UNROLL
                for (int32_t l = 0; l < TTE_BB_LANES; l++) acc[l] = 0.0f;
                for (int32_t i = 0; i < KH; i++) {
                    const int32_t r = h + geo->pad_top - i; /* = ho * sh when tap row i reaches row h */
                    if (r < 0 || r % sh || r / sh >= HO) continue;
                    const float *gr = gn + (r / sh) * WO;
                    for (int32_t wo = wo0; wo < wo1; wo++) win[wo * sw - base] = gr[wo];
                    for (int32_t t = 0; t < KW; t++) {
                        const float *in = win + KW - 1 - t;
                        const float w = wr[i * KW + t];
                        TTE_ARM_UNROLL
                        for (int32_t l = 0; l < TTE_BB_LANES; l++) acc[l] = tte_mla_f32(acc[l], in[l], w);
                    }
                }
                for (int32_t l = 0; l < lanes; l++) out[h * W + w0 + l] = acc[l];
            }
        }
    }
}

/* The group's terms of the block input's gradient: dx[n, k, p] += g1[n][j][p] * W1[c0 + j, k] for j ascending, so
 * that over the groups each element adds its terms c = 0, 1, ... to the zeroed dx (tte_conv_grad_input_f32's
 * pointwise order).  Positions go TTE_BB_TILE_P at a time in registers; the rest one by one. */
static void block_input_terms(const block_geometry *b, const tte_block_conv *pw1, const float *g1, float *dx) {
    float wr[TTE_BLOCK_MAX_GROUP];
    for (int32_t n = 0; n < b->N; n++) {
        const float *gn = g1 + (size_t)n * (size_t)b->G * (size_t)b->P1;
        for (int32_t k = 0; k < b->K; k++) {
            for (int32_t j = 0; j < b->G; j++) wr[j] = pointwise_real(pw1, b->c0 + j, k);
            float *dxk = dx + ((size_t)n * (size_t)b->K + (size_t)k) * (size_t)b->P1;
            int32_t p = 0;
            for (; p + TTE_BB_TILE_P <= b->P1; p += TTE_BB_TILE_P) {
                float acc[TTE_BB_TILE_P];
                TTE_ARM_UNROLL
                for (int32_t i = 0; i < TTE_BB_TILE_P; i++) acc[i] = dxk[p + i];
                for (int32_t j = 0; j < b->G; j++) {
                    const float *gj = gn + (size_t)j * (size_t)b->P1 + (size_t)p;
                    TTE_ARM_UNROLL
                    for (int32_t i = 0; i < TTE_BB_TILE_P; i++) acc[i] = tte_mla_f32(acc[i], gj[i], wr[j]);
                }
                TTE_ARM_UNROLL
                for (int32_t i = 0; i < TTE_BB_TILE_P; i++) dxk[p + i] = acc[i];
            }
            for (; p < b->P1; p++) {
                float acc = dxk[p];
                for (int32_t j = 0; j < b->G; j++)
                    acc = tte_mla_f32(acc, gn[(size_t)j * (size_t)b->P1 + (size_t)p], wr[j]);
                dxk[p] = acc;
            }
        }
    }
}

#if defined(__arm__)
#define TTE_BB_PW1_ROWS 1
#define TTE_BB_PW1_COLS 8
#else
#define TTE_BB_PW1_ROWS TTE_BB_TILE_C
#define TTE_BB_PW1_COLS TTE_WG_TILE_C
#endif

/* A block of pw1's weight gradient, rows = the group's channels j (from g1), columns = pw1's input channels k (from
 * x1): each element the sum over samples, then positions (ascending) of g1[n][j][p] * x1[n, k, p], as
 * tte_pw_weight_grad_tile computes it, with tiles of TTE_BB_PW1_ROWS rows (a group's channels) x TTE_BB_PW1_COLS
 * columns (on Arm 1 x 8: a group has as few as one channel); the innermost loop runs across columns (vector lanes),
 * each element adding its terms in order. */
static void pw1_grad_tile(const block_geometry *b, const tte_saved_s8 *x, const float *g1, int32_t j0, int32_t k,
                          float g[TTE_BB_PW1_ROWS][TTE_BB_PW1_COLS]) {
    float acc[TTE_BB_PW1_ROWS][TTE_BB_PW1_COLS];
    TTE_ARM_UNROLL
    for (int32_t i = 0; i < TTE_BB_PW1_ROWS; i++) {
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < TTE_BB_PW1_COLS; j++) acc[i][j] = 0.0f;
    }
    for (int32_t n = 0; n < b->N; n++) {
        const float *gn = g1 + ((size_t)n * (size_t)b->G + (size_t)j0) * (size_t)b->P1;
        const int8_t *xn = x->data + ((size_t)n * (size_t)b->K + (size_t)k) * (size_t)b->P1;
        for (int32_t p = 0; p < b->P1; p++) {
            float xv[TTE_BB_PW1_COLS];
            TTE_ARM_UNROLL
            for (int32_t j = 0; j < TTE_BB_PW1_COLS; j++)
                xv[j] = (float)((int32_t)xn[(size_t)j * (size_t)b->P1 + (size_t)p] - x->zero_point) * x->scale;
            TTE_ARM_UNROLL
            for (int32_t i = 0; i < TTE_BB_PW1_ROWS; i++) {
                const float d = gn[(size_t)i * (size_t)b->P1 + (size_t)p];
                TTE_ARM_UNROLL
                for (int32_t j = 0; j < TTE_BB_PW1_COLS; j++) acc[i][j] = tte_mla_f32(acc[i][j], d, xv[j]);
            }
        }
    }
    TTE_ARM_UNROLL
    for (int32_t i = 0; i < TTE_BB_PW1_ROWS; i++) {
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < TTE_BB_PW1_COLS; j++) g[i][j] = acc[i][j];
    }
}

static void pw1_grad_edge(const block_geometry *b, const tte_saved_s8 *x, const float *g1, int32_t j0, int32_t nj,
                          int32_t k, int32_t nk, float g[TTE_BB_PW1_ROWS][TTE_BB_PW1_COLS]) {
    float acc[TTE_BB_PW1_ROWS][TTE_BB_PW1_COLS];
    for (int32_t i = 0; i < nj; i++)
        for (int32_t j = 0; j < nk; j++) acc[i][j] = 0.0f;
    for (int32_t n = 0; n < b->N; n++) {
        const float *gn = g1 + ((size_t)n * (size_t)b->G + (size_t)j0) * (size_t)b->P1;
        const int8_t *xn = x->data + ((size_t)n * (size_t)b->K + (size_t)k) * (size_t)b->P1;
        for (int32_t p = 0; p < b->P1; p++) {
            for (int32_t j = 0; j < nk; j++) {
                const float xv = (float)((int32_t)xn[(size_t)j * (size_t)b->P1 + (size_t)p] - x->zero_point) * x->scale;
                for (int32_t i = 0; i < nj; i++)
                    acc[i][j] = tte_mla_f32(acc[i][j], gn[(size_t)i * (size_t)b->P1 + (size_t)p], xv);
            }
        }
    }
    for (int32_t i = 0; i < nj; i++)
        for (int32_t j = 0; j < nk; j++) g[i][j] = acc[i][j];
}

/* pw1's trained weight rows of the group, a block of at most a tile at a time, each applied with SGD as soon as it
 * is known.  A block at the end of the group's rows or of the trained columns is computed as the full tile that ends
 * where it ends when there is room: its first elements are computed again (the same values) and dropped. */
static void pw1_row_steps(const block_geometry *b, const tte_block_conv *pw1, const float *g1) {
    const int32_t cols = pw1->channels;
    const tte_sgd_params sg = *pw1->weight_sgd;
    for (int32_t j0 = 0; j0 < b->G; j0 += TTE_BB_PW1_ROWS) {
        const int32_t nj = b->G - j0 < TTE_BB_PW1_ROWS ? b->G - j0 : TTE_BB_PW1_ROWS;
        for (int32_t k = 0; k < cols; k += TTE_BB_PW1_COLS) {
            const int32_t nk = cols - k < TTE_BB_PW1_COLS ? cols - k : TTE_BB_PW1_COLS;
            float g[TTE_BB_PW1_ROWS][TTE_BB_PW1_COLS];
            if (b->G < TTE_BB_PW1_ROWS || cols < TTE_BB_PW1_COLS) {
                pw1_grad_edge(b, pw1->x, g1, j0, nj, k, nk, g);
            } else {
                const int32_t tj = j0 + nj - TTE_BB_PW1_ROWS, tk = k + nk - TTE_BB_PW1_COLS;
                float t[TTE_BB_PW1_ROWS][TTE_BB_PW1_COLS];
                pw1_grad_tile(b, pw1->x, g1, tj, tk, t);
                for (int32_t i = 0; i < nj; i++)
                    for (int32_t j = 0; j < nk; j++) g[i][j] = t[j0 - tj + i][k - tk + j];
            }
            for (int32_t i = 0; i < nj; i++) {
                const int32_t c = b->c0 + j0 + i;
                for (int32_t j = 0; j < nk; j++) {
                    const int32_t index = c * cols + k + j;
                    pw1->weights[index] = (int8_t)tte_sgd_value(&sg, pw1->weights[index], g[i][j],
                                                                pw1->weight_factors[c], (uint32_t)index);
                }
            }
        }
    }
}

/* The expanded channels `group` at a time, each group in the order the unfused chain's values depend on each other;
 * a weight's values of the group (W2[:, c], Wdw[c], W1[c, :]) are updated after their last read, which is for the
 * group alone. */
tte_status tte_block_backward_f32(const tte_dims *dz2_dims, const float *dz2, const tte_block_conv *pw2,
                                  const tte_conv_geometry *dw_geo, const tte_block_conv *dw, const tte_dims *mid_dims,
                                  const tte_block_conv *pw1, const tte_dims *dx_dims, float *dx, int32_t group,
                                  float *scratch) {
    const int32_t N = dz2_dims->n, C = pw2->w_dims->c;
    if (pw2->w_dims->n != dz2_dims->c || dw->w_dims->n != C || dw->w_dims->c != 1 || dw_geo->groups != C ||
        mid_dims->c != C || mid_dims->n != N || !dw->mask || group < 1 || group > TTE_BLOCK_MAX_GROUP ||
        dw->w_dims->h > TTE_BLOCK_MAX_TAPS || dw->w_dims->w > TTE_BLOCK_MAX_TAPS ||
        (dx && (!pw1 || !dx_dims)) || (pw1 && (pw1->w_dims->n != C || !pw1->mask)) ||
        (dx && (dx_dims->c != pw1->w_dims->c || dx_dims->n != N || dx_dims->h != mid_dims->h ||
                dx_dims->w != mid_dims->w)))
        return TTE_ERROR_ARGUMENT;
    const tte_dims out_dims = {N, C, dz2_dims->h, dz2_dims->w}; /* dw's output */
    block_geometry b = {N, C, dz2_dims->c, pw1 ? pw1->w_dims->c : 0, mid_dims->h * mid_dims->w,
                        dz2_dims->h * dz2_dims->w, 0, group, mid_dims, &out_dims};
    float *g2 = scratch, *g1 = scratch + (size_t)N * (size_t)group * (size_t)b.P2;
    if (dx) memset(dx, 0, sizeof(float) * (size_t)N * (size_t)b.K * (size_t)b.P1);
    for (b.c0 = 0; b.c0 < C; b.c0 += group) {
        b.G = C - b.c0 < group ? C - b.c0 : group;
        dw_output_grads(&b, dz2, pw2, g2);
        apply_mask(&b, dw->mask, b.P2, g2);
        if (pw2->weights && b.c0 < pw2->channels) pw2_column_steps(&b, dz2_dims, dz2, pw2);
        if (dw->bias) bias_steps(&b, dw, g2, b.P2);
        if (pw1) {
            for (int32_t j = 0; j < b.G; j++) dw_input_grad(&b, dw_geo, dw, g2, j, g1);
            apply_mask(&b, pw1->mask, b.P1, g1);
        }
        if (dw->weights)
            for (int32_t j = 0; j < b.G && b.c0 + j < dw->channels; j++) dw_row_step(&b, dw_geo, dw, g2, j);
        if (!pw1) continue;
        if (pw1->bias) bias_steps(&b, pw1, g1, b.P1);
        if (dx) block_input_terms(&b, pw1, g1, dx);
        if (pw1->weights) pw1_row_steps(&b, pw1, g1);
    }
    return TTE_OK;
}
