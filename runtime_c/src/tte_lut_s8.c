#include "tte_runtime.h"

/* output[i] = table[input[i] + 128]; mask bit i = bit input[i] + 128 of mask_table (both bit-packed: bit k & 7
 * of byte k >> 3).  Elementwise, so output may be input. */
tte_status tte_lut_s8(int32_t size, const int8_t *input, const int8_t *table, const uint8_t *mask_table,
                      int8_t *output, uint8_t *mask) {
    if (mask && !mask_table) return TTE_ERROR_ARGUMENT;
    for (int32_t i = 0; i < size; i++) {
        const uint32_t k = (uint32_t)((int32_t)input[i] + 128), j = (uint32_t)i;
        output[i] = table[k];
        if (mask) {
            const uint8_t bit = (uint8_t)(1u << (j & 7u));
            if ((mask_table[k >> 3] >> (k & 7u)) & 1u) mask[j >> 3] |= bit; else mask[j >> 3] &= (uint8_t)~bit;
        }
    }
    return TTE_OK;
}
