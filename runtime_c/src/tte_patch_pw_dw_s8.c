#include "tte_patch_internal.h"
#include "tte_runtime.h"

/* One band of a fused 1x1 + depthwise conv (tte_conv_pw_dw_s8): rows out_rows of the output into `output`, a band
 * buffer of exactly those rows, from `input`, a band buffer of rows in_rows of the input, which are all the 1x1 conv
 * expands (scratch: one plane of them).  in_dims and out_dims are the whole tensors'. */
tte_status tte_patch_pw_dw_s8(const tte_quant_params *q1, const int8_t *w1, const int32_t *w1_zero_points,
                              const int32_t *b1, const float *m1, const tte_conv_geometry *geo2,
                              const tte_quant_params *q2, const tte_dims *w2_dims, const int8_t *w2,
                              const int32_t *w2_zero_points, const int32_t *b2, const float *m2,
                              const tte_dims *in_dims, const int32_t *in_rows, const int8_t *input,
                              const tte_dims *out_dims, const int32_t *out_rows, int8_t *output, int8_t *scratch) {
    tte_conv_geometry band;
    if (!tte_patch_band_geometry(geo2, w2_dims->h, in_dims->h, out_dims->h, in_rows, out_rows, &band))
        return TTE_ERROR_ARGUMENT;
    const tte_dims in = {in_dims->n, in_dims->c, in_rows[1] - in_rows[0], in_dims->w};
    const tte_dims out = {out_dims->n, out_dims->c, out_rows[1] - out_rows[0], out_dims->w};
    return tte_conv_pw_dw_s8(q1, w1, w1_zero_points, b1, m1, &band, q2, w2_dims, w2, w2_zero_points, b2, m2, &in,
                             input, &out, output, scratch, 0);
}
