#include "tte_runtime.h"

/* Eight values per mask byte, each read and then kept or zeroed: a constant trip count and no branch on the
 * (random) mask bits, which the compiler vectorizes as a select. */
tte_status tte_ste_f32(int32_t size, const float *grad, const uint8_t *mask, float *output) {
    int32_t i = 0;
    for (; i + 8 <= size; i += 8) {
        const uint32_t bits = mask[i >> 3];
        float v[8];
        for (int32_t k = 0; k < 8; k++) v[k] = grad[i + k];
        for (int32_t k = 0; k < 8; k++) output[i + k] = (bits >> k) & 1u ? v[k] : 0.0f;
    }
    for (; i < size; i++) output[i] = (mask[i >> 3] >> (i & 7)) & 1 ? grad[i] : 0.0f;
    return TTE_OK;
}
