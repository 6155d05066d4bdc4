#include "tte_grad_core.h"

/* The gradient of a conv weight's trained slice as a buffer ([O, channels, KH, KW]; depthwise:
 * [channels, 1, KH, KW]), for updates that need it whole (momentum).  A pointwise conv's a block of output x input
 * channels at a time (tte_grad_core.h). */
tte_status tte_conv_grad_weight_f32(const tte_conv_geometry *geo, int32_t depthwise, int32_t channels,
                                    const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                    const float *dz, const tte_dims *w_dims, float *grad) {
    const int32_t rows = depthwise ? channels : w_dims->n, cols = depthwise ? 1 : channels;
    if (tte_pointwise_weight_grad(geo, depthwise, x_dims, dz_dims, w_dims)) {
        for (int32_t o = 0; o < rows; o += TTE_WG_TILE_O) {
            const int32_t no = rows - o < TTE_WG_TILE_O ? rows - o : TTE_WG_TILE_O;
            for (int32_t c = 0; c < cols; c += TTE_WG_TILE_C) {
                const int32_t nc = cols - c < TTE_WG_TILE_C ? cols - c : TTE_WG_TILE_C;
                float g[TTE_WG_TILE_O][TTE_WG_TILE_C];
                tte_pw_weight_grad_block(x_dims, x, dz_dims, dz, rows, cols, o, no, c, nc, g);
                for (int32_t i = 0; i < no; i++)
                    for (int32_t j = 0; j < nc; j++) grad[(size_t)(o + i) * (size_t)cols + (size_t)(c + j)] = g[i][j];
            }
        }
        return TTE_OK;
    }
    for (int32_t o = 0; o < rows; o++)
        tte_conv_weight_grad_row(geo, depthwise, cols, o, x_dims, x, dz_dims, dz, w_dims,
                                 grad + (size_t)o * (size_t)cols * (size_t)w_dims->h * (size_t)w_dims->w);
    return TTE_OK;
}
