/* The band geometry of patch-based execution (tte/ops/patch.py), shared by tte_patch_conv_s8 and tte_patch_pw_dw_s8
 * (not part of the public API). */
#ifndef TTE_PATCH_INTERNAL_H
#define TTE_PATCH_INTERNAL_H

#include "tte_runtime.h"

/* One band of a window op along the rows: output rows out_rows = {first, end} of the whole output, read from a band
 * buffer that holds rows in_rows = {first, end} of the whole input (`height` rows), through a kernel of `kernel_h`
 * rows.  *band is *geo with the band's vertical padding: its pad_top is what remains of geo->pad_top above the band
 * (only the first bands of the output have any), its pad_bottom likewise below (only the last ones).  A buffer that
 * holds rows above those the band reads gives a negative pad_top: the kernels start that many rows into it (they
 * read rows top + i of a window, checked against the buffer's rows, which hold everything the band reads); one that
 * holds rows below them a negative pad_bottom, which keeps a 1x1 conv off tte_conv_s8's unpadded path (that one
 * computes every row of its input).
 * Returns 0 when the rows are not a band of the tensors or the buffer lacks rows the band reads. */
static inline int tte_patch_band_geometry(const tte_conv_geometry *geo, int32_t kernel_h, int32_t height,
                                          int32_t out_height, const int32_t *in_rows, const int32_t *out_rows,
                                          tte_conv_geometry *band) {
    const int32_t first = out_rows[0] * geo->stride_h - geo->pad_top;           /* the first row read, maybe < 0 */
    const int32_t end = (out_rows[1] - 1) * geo->stride_h - geo->pad_top + kernel_h; /* one past the last */
    if (out_rows[0] < 0 || out_rows[0] >= out_rows[1] || out_rows[1] > out_height) return 0;
    if (in_rows[0] < 0 || in_rows[0] > in_rows[1] || in_rows[1] > height) return 0;
    if ((first > 0 ? first : 0) < in_rows[0] || (end < height ? end : height) > in_rows[1]) return 0;
    *band = *geo;
    band->pad_top = in_rows[0] - first;
    band->pad_bottom = end - in_rows[1];
    return 1;
}

#endif /* TTE_PATCH_INTERNAL_H */
