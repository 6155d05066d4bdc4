/* The size of a state blob: header, every tensor's bytes, CRC (see tte_runtime.h). */
#include "tte_runtime.h"

uint32_t tte_state_blob_bytes(const tte_state_layout *layout) {
    if (layout == NULL || layout->count < 0 || (layout->count > 0 && layout->tensors == NULL)) return 0;
    uint32_t total = TTE_STATE_HEADER_BYTES + TTE_STATE_CRC_BYTES;
    for (int32_t i = 0; i < layout->count; i++) {
        const tte_state_tensor *t = &layout->tensors[i];
        if ((t->bytes > 0 && t->data == NULL) || t->bytes > UINT32_MAX - total) return 0;
        total += t->bytes;
    }
    return total;
}
