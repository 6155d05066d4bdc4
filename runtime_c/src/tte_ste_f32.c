#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

/* Eight values per mask byte, each read and then kept or zeroed: a constant trip count and no branch on the
 * (random) mask bits.  A value is kept or zeroed as its 32 bits ANDed with all ones or all zeros (0.0f is all
 * zeros; a kept NaN keeps its bits, as the select would), which a host vectorizes and a Cortex-M does in two
 * instructions (SBFX, AND) without the FPU. */
tte_status tte_ste_f32(int32_t size, const float *grad, const uint8_t *mask, float *output) {
    int32_t i = 0;
    for (; i + 8 <= size; i += 8) {
        const uint32_t bits = mask[i >> 3];
        TTE_ARM_UNROLL
        for (int32_t k = 0; k < 8; k++) { /* element by element: output may be grad */
            uint32_t v;
            memcpy(&v, grad + i + k, sizeof v);
            v &= 0u - ((bits >> k) & 1u);
            memcpy(output + i + k, &v, sizeof v);
        }
    }
    for (; i < size; i++) output[i] = (mask[i >> 3] >> (i & 7)) & 1 ? grad[i] : 0.0f;
    return TTE_OK;
}
