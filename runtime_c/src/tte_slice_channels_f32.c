#include <string.h>

#include "tte_runtime.h"

tte_status tte_slice_channels_f32(const tte_dims *in_dims, int32_t start, int32_t stop, const float *input,
                                  float *output) {
    const size_t plane = (size_t)in_dims->h * (size_t)in_dims->w;
    if (start < 0 || stop > in_dims->c || start > stop) return TTE_ERROR_ARGUMENT;
    for (int32_t n = 0; n < in_dims->n; n++)
        memcpy(output + (size_t)n * (size_t)(stop - start) * plane,
               input + ((size_t)n * (size_t)in_dims->c + (size_t)start) * plane,
               sizeof(float) * (size_t)(stop - start) * plane);
    return TTE_OK;
}
