#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

int32_t tte_conv_dw_s8_get_buffer_size(const tte_dims *out_dims) { return out_dims->h * out_dims->w; }

/* Depthwise conv, channel by channel through `scratch` (one output plane), so output may equal input:
 * output channel c is written only after input channel c is consumed, and it lands at or before it.
 * Windows wholly inside the plane skip the tap checks (tte_conv_plane_s8).  With the Arm DSP extension and room in
 * scratch (scratch_bytes) past the output plane, a plane too large for tte_conv_plane_s8's own padding copy is copied
 * there inside its padding (z_x): every window is then an interior one. */
tte_status tte_conv_dw_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                          const int8_t *input, const tte_dims *w_dims, const tte_split_weights *weights,
                          const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                          const tte_dims *out_dims, int8_t *output, uint8_t *mask, int8_t *scratch,
                          int32_t scratch_bytes) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t KH = w_dims->h, KW = w_dims->w, HO = out_dims->h, WO = out_dims->w;
    if (w_dims->n != C || w_dims->c != 1 || out_dims->c != C || geo->groups != C) return TTE_ERROR_ARGUMENT;
    const int32_t PT = geo->pad_top, PL = geo->pad_left, HP = H + PT + geo->pad_bottom, WP = W + PL + geo->pad_right;
    const int64_t out_bytes = ((int64_t)HO * WO + 3) & ~(int64_t)3;
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
    const int padded = PT >= 0 && PL >= 0 && geo->pad_bottom >= 0 && geo->pad_right >= 0 &&
                       (int64_t)HP * WP > TTE_PAD_BYTES && out_bytes + (int64_t)HP * WP <= (int64_t)scratch_bytes &&
                       tte_zp_s8(q->input_zero_point);
#else
    const int padded = 0;
    (void)scratch_bytes;
#endif
    tte_conv_geometry inner = *geo;
    if (padded) inner.pad_top = inner.pad_left = inner.pad_bottom = inner.pad_right = 0;
    for (int32_t n = 0; n < in_dims->n; n++) {
        for (int32_t c = 0; c < C; c++) {
            const int8_t *x = input + ((size_t)n * (size_t)C + (size_t)c) * (size_t)H * (size_t)W;
            const int8_t *wc = tte_weight_row(weights, 1, c, 0, 1, KH * KW);
            const int32_t wz = weight_zero_points ? weight_zero_points[c] : 0;
            const tte_rq r = tte_rq_channel(q, bias, multipliers, c);
            const size_t base = ((size_t)n * (size_t)C + (size_t)c) * (size_t)HO * (size_t)WO;
            if (padded) {
                int8_t *plane = scratch + out_bytes;
                tte_pad_plane_s8(plane, HP, WP, x, H, W, PT, PL, q->input_zero_point);
                tte_conv_plane_s8(plane, 1, HP, WP, wc, KH, KW, &inner, HO, WO, q->input_zero_point, wz, &r, scratch,
                                  mask, base);
            } else {
                tte_conv_plane_s8(x, 1, H, W, wc, KH, KW, geo, HO, WO, q->input_zero_point, wz, &r, scratch, mask,
                                  base);
            }
            memcpy(output + base, scratch, (size_t)HO * (size_t)WO);
        }
    }
    return TTE_OK;
}
