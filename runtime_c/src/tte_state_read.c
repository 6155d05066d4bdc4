/* Load the newest valid state blob into a layout's tensors (see tte_runtime.h): the slot is checked whole first
 * (tte_state_find), then read again unit by unit straight into the tensors, its CRC checked once more. */
#include <string.h>

#include "tte_runtime.h"

tte_state_status tte_state_read(const tte_state_layout *layout, const tte_state_storage *storage, uint64_t *steps) {
    tte_state_slot newest;
    if (steps == NULL) return TTE_STATE_ERROR_ARGUMENT;
    const tte_state_status found = tte_state_find(layout, storage, &newest);
    if (found != TTE_STATE_OK) return found;
    const uint32_t base = (uint32_t)newest.slot * storage->slot_size, size = tte_state_blob_bytes(layout);
    const uint32_t body = size - TTE_STATE_CRC_BYTES; /* the CRC covers [0, body) and sits at [body, size) */
    uint8_t unit[TTE_STATE_UNIT];
    uint32_t crc = 0, stored = 0, offset = 0; /* offset: bytes of tensor t filled so far */
    int32_t t = 0;
    for (uint32_t at = 0; at < size; at += TTE_STATE_UNIT) {
        if (storage->read(storage->ctx, base + at, unit, TTE_STATE_UNIT) != 0) return TTE_STATE_ERROR_IO;
        const uint32_t n = size - at < TTE_STATE_UNIT ? size - at : TTE_STATE_UNIT;
        const uint32_t covered = at >= body ? 0u : (body - at < n ? body - at : n);
        crc = tte_crc32(crc, unit, covered);
        for (uint32_t i = at < TTE_STATE_HEADER_BYTES ? TTE_STATE_HEADER_BYTES - at : 0u; i < covered;) {
            while (offset == layout->tensors[t].bytes) { /* the tensor this byte belongs to */
                t++;
                offset = 0;
            }
            const uint32_t left = layout->tensors[t].bytes - offset;
            const uint32_t m = covered - i < left ? covered - i : left;
            memcpy((uint8_t *)layout->tensors[t].data + offset, unit + i, m);
            offset += m;
            i += m;
        }
        for (uint32_t i = covered; i < n; i++) stored |= (uint32_t)unit[i] << (8u * (at + i - body));
    }
    if (crc != stored) return TTE_STATE_ERROR_CORRUPT;
    *steps = newest.steps;
    return TTE_STATE_OK;
}
