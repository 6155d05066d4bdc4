/* Save a state blob power-safely (see tte_runtime.h): into the slot that does not hold the newest valid blob, with
 * the next sequence number, written unit by unit from the tensors themselves (no copy of the state), then read
 * back. */
#include "tte_runtime.h"

typedef struct {
    const tte_state_storage *storage;
    uint32_t base;     /* the slot's first byte */
    uint32_t at;       /* where the unit being filled goes, from base */
    uint32_t fill;     /* bytes of the unit filled so far */
    uint32_t crc;      /* of every byte put so far, the CRC itself excepted */
    int failed;        /* a callback failed: put nothing more */
    uint8_t unit[TTE_STATE_UNIT];
} tte_state_writer;

/* Append `size` bytes to the slot, writing every unit as it fills. */
static void tte_state_put(tte_state_writer *w, const void *data, uint32_t size) {
    const uint8_t *p = (const uint8_t *)data;
    for (uint32_t i = 0; i < size && !w->failed; i++) {
        w->unit[w->fill++] = p[i];
        if (w->fill == TTE_STATE_UNIT) {
            w->failed = w->storage->write(w->storage->ctx, w->base + w->at, w->unit, TTE_STATE_UNIT) != 0;
            w->at += TTE_STATE_UNIT;
            w->fill = 0;
        }
    }
}

static void tte_state_put_le(tte_state_writer *w, uint64_t value, uint32_t bytes) {
    uint8_t b[8];
    for (uint32_t i = 0; i < bytes; i++) b[i] = (uint8_t)(value >> (8u * i) & 0xFFu);
    w->crc = tte_crc32(w->crc, b, bytes);
    tte_state_put(w, b, bytes);
}

tte_state_status tte_state_write(const tte_state_layout *layout, uint64_t steps, const tte_state_storage *storage) {
    tte_state_slot newest;
    const tte_state_status found = tte_state_find(layout, storage, &newest);
    if (found == TTE_STATE_ERROR_ARGUMENT || found == TTE_STATE_ERROR_IO) return found;
    if (storage->write == NULL) return TTE_STATE_ERROR_ARGUMENT;
    const int32_t slot = found == TTE_STATE_OK ? 1 - newest.slot : 0;
    const uint32_t sequence = found == TTE_STATE_OK ? newest.sequence + 1u : 1u;
    tte_state_writer w = {storage, (uint32_t)slot * storage->slot_size, 0, 0, 0, 0, {0}};
    if (storage->erase != NULL && storage->erase(storage->ctx, w.base, storage->slot_size) != 0)
        return TTE_STATE_ERROR_IO;
    tte_state_put_le(&w, TTE_STATE_MAGIC, 4);
    tte_state_put_le(&w, TTE_STATE_VERSION, 4);
    tte_state_put_le(&w, tte_state_blob_bytes(layout), 4);
    tte_state_put_le(&w, sequence, 4);
    tte_state_put_le(&w, layout->fingerprint, 8);
    tte_state_put_le(&w, steps, 8);
    for (int32_t i = 0; i < layout->count; i++) {
        w.crc = tte_crc32(w.crc, layout->tensors[i].data, layout->tensors[i].bytes);
        tte_state_put(&w, layout->tensors[i].data, layout->tensors[i].bytes);
    }
    uint8_t crc[TTE_STATE_CRC_BYTES];
    for (uint32_t i = 0; i < TTE_STATE_CRC_BYTES; i++) crc[i] = (uint8_t)(w.crc >> (8u * i) & 0xFFu);
    tte_state_put(&w, crc, TTE_STATE_CRC_BYTES);
    if (w.fill > 0) { /* the last unit, padded as erased flash reads */
        static const uint8_t erased[TTE_STATE_UNIT] = {
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        tte_state_put(&w, erased, TTE_STATE_UNIT - w.fill);
    }
    if (w.failed) return TTE_STATE_ERROR_IO;
    /* read it back: the slot just written must now hold the newest valid blob */
    const tte_state_status check = tte_state_find(layout, storage, &newest);
    if (check == TTE_STATE_ERROR_IO) return TTE_STATE_ERROR_IO;
    return check == TTE_STATE_OK && newest.slot == slot && newest.sequence == sequence ? TTE_STATE_OK
                                                                                       : TTE_STATE_ERROR_VERIFY;
}
