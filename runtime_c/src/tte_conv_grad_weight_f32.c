#include "tte_grad_core.h"

/* The gradient of a conv weight's trained slice as a buffer ([O, channels, KH, KW]; depthwise:
 * [channels, 1, KH, KW]), for updates that need it whole (momentum). */
tte_status tte_conv_grad_weight_f32(const tte_conv_geometry *geo, int32_t depthwise, int32_t channels,
                                    const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                    const float *dz, const tte_dims *w_dims, float *grad) {
    const int32_t rows = depthwise ? channels : w_dims->n, cols = depthwise ? 1 : channels;
    for (int32_t o = 0; o < rows; o++)
        tte_conv_weight_grad_row(geo, depthwise, cols, o, x_dims, x, dz_dims, dz, w_dims,
                                 grad + (size_t)o * (size_t)cols * (size_t)w_dims->h * (size_t)w_dims->w);
    return TTE_OK;
}
