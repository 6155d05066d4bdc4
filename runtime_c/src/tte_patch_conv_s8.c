#include "tte_patch_internal.h"
#include "tte_runtime.h"

/* One band of a conv (tte_conv_s8; a depthwise one through tte_conv_dw_s8, with `scratch`): rows out_rows of the
 * output into `output`, a band buffer of exactly those rows, from `input`, a band buffer of rows in_rows of the input
 * (the whole input when in_rows = {0, H}).  in_dims and out_dims are the whole tensors'. */
tte_status tte_patch_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                             const int32_t *in_rows, const int8_t *input, const tte_dims *w_dims,
                             const tte_split_weights *weights, const int32_t *weight_zero_points, const int32_t *bias,
                             const float *multipliers, const tte_dims *out_dims, const int32_t *out_rows,
                             int8_t *output, int8_t *scratch) {
    tte_conv_geometry band;
    if (!tte_patch_band_geometry(geo, w_dims->h, in_dims->h, out_dims->h, in_rows, out_rows, &band))
        return TTE_ERROR_ARGUMENT;
    const tte_dims in = {in_dims->n, in_dims->c, in_rows[1] - in_rows[0], in_dims->w};
    const tte_dims out = {out_dims->n, out_dims->c, out_rows[1] - out_rows[0], out_dims->w};
    if (geo->groups > 1 && geo->groups == in_dims->c && w_dims->c == 1 && w_dims->n == geo->groups) {
        if (scratch == NULL) return TTE_ERROR_ARGUMENT;
        return tte_conv_dw_s8(&band, q, &in, input, w_dims, weights, weight_zero_points, bias, multipliers, &out,
                              output, NULL, scratch, out.h * out.w); /* a band's scratch: its output plane */
    }
    return tte_conv_s8(&band, q, &in, input, w_dims, weights, weight_zero_points, bias, multipliers, &out, output,
                       NULL, NULL, 0);
}
