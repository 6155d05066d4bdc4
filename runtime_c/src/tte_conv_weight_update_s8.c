#include "tte_grad_core.h"
#include "tte_sgd_core.h"

int32_t tte_conv_weight_update_get_buffer_size(const tte_dims *w_dims, int32_t channels, int32_t depthwise) {
    return (int32_t)sizeof(float) * (depthwise ? 1 : channels) * w_dims->h * w_dims->w;
}

/* For each output channel o (depthwise: each of the first `channels` channels): the gradient of its
 * trained slice into scratch (tte_grad_core.h), then SGD on those values: no gradient buffer.  A pointwise conv's
 * gradient comes a block of output x input channels at a time (tte_pw_weight_grad_block), each block updated as
 * soon as it is known (every value's update depends on that value alone). */
tte_status tte_conv_weight_update_s8(const tte_conv_geometry *geo, int32_t depthwise, int32_t channels,
                                     const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                     const float *dz, const float *factors, const tte_sgd_params *sgd,
                                     const tte_dims *w_dims, int8_t *weights, float *scratch) {
    const int32_t KK = w_dims->h * w_dims->w;
    const int32_t rows = depthwise ? channels : w_dims->n, cols = depthwise ? 1 : channels;
    const tte_sgd_params sg = *sgd; /* a local copy: the int8 stores below cannot change it, so it stays in registers */
    if (tte_pointwise_weight_grad(geo, depthwise, x_dims, dz_dims, w_dims)) {
        for (int32_t o = 0; o < rows; o += TTE_WG_TILE_O) {
            const int32_t no = rows - o < TTE_WG_TILE_O ? rows - o : TTE_WG_TILE_O;
            for (int32_t c = 0; c < cols; c += TTE_WG_TILE_C) {
                const int32_t nc = cols - c < TTE_WG_TILE_C ? cols - c : TTE_WG_TILE_C;
                float g[TTE_WG_TILE_O][TTE_WG_TILE_C];
                tte_pw_weight_grad_block(x_dims, x, dz_dims, dz, rows, cols, o, no, c, nc, g);
                for (int32_t i = 0; i < no; i++) {
                    for (int32_t j = 0; j < nc; j++) {
                        const int32_t index = (o + i) * cols + c + j;
                        weights[index] = (int8_t)tte_sgd_value(&sg, weights[index], g[i][j], factors[o + i],
                                                               (uint32_t)index);
                    }
                }
            }
        }
        return TTE_OK;
    }
    for (int32_t o = 0; o < rows; o++) {
        tte_conv_weight_grad_row(geo, depthwise, cols, o, x_dims, x, dz_dims, dz, w_dims, scratch);
        for (int32_t cl = 0; cl < cols; cl++) {
            for (int32_t t = 0; t < KK; t++) {
                const uint32_t index = (uint32_t)((o * cols + cl) * KK + t);
                /* the trained slice's layout */
                int8_t *p = weights + ((size_t)o * (size_t)cols + (size_t)cl) * (size_t)KK + t;
                *p = (int8_t)tte_sgd_value(&sg, *p, scratch[cl * KK + t], factors[o], index);
            }
        }
    }
    return TTE_OK;
}
