#include "tte_runtime.h"

/* dx[i] = dy[i] * grad_table[input[i] + 128], one float32 product.  Elementwise, so dx may be dy. */
tte_status tte_lut_grad_f32(int32_t size, const float *dy, const int8_t *input, const float *grad_table,
                            float *dx) {
    for (int32_t i = 0; i < size; i++) dx[i] = dy[i] * grad_table[(int32_t)input[i] + 128];
    return TTE_OK;
}
