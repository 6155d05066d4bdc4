#include "tte_runtime.h"

/* output = input with its 4 axes permuted: output axis k is input axis perm[k] (numpy.transpose).  in_dims
 * are the input's (n, c, h, w) in storage order, whatever the axes mean.  Not in place. */
tte_status tte_transpose_s8(const tte_dims *in_dims, const int32_t perm[4], const int8_t *input, int8_t *output) {
    const int32_t d[4] = {in_dims->n, in_dims->c, in_dims->h, in_dims->w};
    const int32_t stride[4] = {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
    int32_t seen = 0;
    for (int32_t k = 0; k < 4; k++) {
        if (perm[k] < 0 || perm[k] > 3 || (seen & (1 << perm[k]))) return TTE_ERROR_ARGUMENT;
        seen |= 1 << perm[k];
    }
    const int32_t o0 = d[perm[0]], o1 = d[perm[1]], o2 = d[perm[2]], o3 = d[perm[3]];
    const int32_t s0 = stride[perm[0]], s1 = stride[perm[1]], s2 = stride[perm[2]], s3 = stride[perm[3]];
    size_t idx = 0;
    for (int32_t a = 0; a < o0; a++)
        for (int32_t b = 0; b < o1; b++)
            for (int32_t c = 0; c < o2; c++)
                for (int32_t e = 0; e < o3; e++)
                    output[idx++] = input[(size_t)a * (size_t)s0 + (size_t)b * (size_t)s1 + (size_t)c * (size_t)s2 +
                                          (size_t)e * (size_t)s3];
    return TTE_OK;
}
