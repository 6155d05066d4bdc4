/* Which slot holds the newest valid state blob of a layout (see tte_runtime.h): each slot is read unit by unit,
 * its CRC checked, then its version, fingerprint and size. */
#include "tte_runtime.h"

static uint32_t tte_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t tte_le64(const uint8_t *p) { return (uint64_t)tte_le32(p) | (uint64_t)tte_le32(p + 4) << 32; }

/* TTE_STATE_OK when slot `slot` holds a complete blob of `layout` (of `blob` bytes), filling *info. */
static tte_state_status tte_state_check_slot(const tte_state_layout *layout, const tte_state_storage *storage,
                                             int32_t slot, uint32_t blob, tte_state_slot *info) {
    uint8_t unit[TTE_STATE_UNIT], header[TTE_STATE_HEADER_BYTES], tail[TTE_STATE_CRC_BYTES];
    const uint32_t base = (uint32_t)slot * storage->slot_size;
    uint32_t size = TTE_STATE_HEADER_BYTES + TTE_STATE_CRC_BYTES, crc = 0;
    for (uint32_t at = 0; at < size; at += TTE_STATE_UNIT) {
        if (storage->read(storage->ctx, base + at, unit, TTE_STATE_UNIT) != 0) return TTE_STATE_ERROR_IO;
        if (at == 0) { /* the header is the first unit */
            for (uint32_t i = 0; i < TTE_STATE_HEADER_BYTES; i++) header[i] = unit[i];
            if (tte_le32(header) != TTE_STATE_MAGIC) return TTE_STATE_ERROR_EMPTY;
            size = tte_le32(header + 8);
            if (size < TTE_STATE_HEADER_BYTES + TTE_STATE_CRC_BYTES || size > storage->slot_size)
                return TTE_STATE_ERROR_CORRUPT;
        }
        const uint32_t n = size - at < TTE_STATE_UNIT ? size - at : TTE_STATE_UNIT;
        const uint32_t body = size - TTE_STATE_CRC_BYTES; /* the CRC covers [0, body) and sits at [body, size) */
        crc = tte_crc32(crc, unit, at >= body ? 0u : (body - at < n ? body - at : n));
        for (uint32_t i = 0; i < n; i++)
            if (at + i >= body) tail[at + i - body] = unit[i];
    }
    if (tte_le32(tail) != crc) return TTE_STATE_ERROR_CORRUPT;
    if (tte_le32(header + 4) != TTE_STATE_VERSION) return TTE_STATE_ERROR_VERSION;
    if (tte_le64(header + 16) != layout->fingerprint || size != blob) return TTE_STATE_ERROR_MODEL;
    info->slot = slot;
    info->sequence = tte_le32(header + 12);
    info->steps = tte_le64(header + 24);
    return TTE_STATE_OK;
}

/* how telling a slot's error is, when neither slot holds a valid blob */
static int tte_state_rank(tte_state_status s) {
    return s == TTE_STATE_ERROR_MODEL ? 3 : s == TTE_STATE_ERROR_VERSION ? 2 : s == TTE_STATE_ERROR_CORRUPT ? 1 : 0;
}

tte_state_status tte_state_find(const tte_state_layout *layout, const tte_state_storage *storage,
                                tte_state_slot *newest) {
    const uint32_t blob = tte_state_blob_bytes(layout);
    if (blob == 0 || storage == NULL || storage->read == NULL || newest == NULL ||
        storage->slot_size % TTE_STATE_UNIT != 0 || storage->slot_size < blob ||
        storage->slot_size > UINT32_MAX / 2u)
        return TTE_STATE_ERROR_ARGUMENT;
    tte_state_slot found[2];
    tte_state_status status[2];
    for (int32_t k = 0; k < 2; k++) {
        status[k] = tte_state_check_slot(layout, storage, k, blob, &found[k]);
        if (status[k] == TTE_STATE_ERROR_IO) return TTE_STATE_ERROR_IO;
    }
    if (status[0] == TTE_STATE_OK && status[1] == TTE_STATE_OK) {
        /* slot 1 is newer when its sequence number is 1 to 2^31 - 1 past slot 0's */
        const uint32_t ahead = found[1].sequence - found[0].sequence;
        *newest = found[ahead - 1u < 0x7FFFFFFFu ? 1 : 0];
        return TTE_STATE_OK;
    }
    for (int32_t k = 0; k < 2; k++) {
        if (status[k] == TTE_STATE_OK) {
            *newest = found[k];
            return TTE_STATE_OK;
        }
    }
    return tte_state_rank(status[1]) > tte_state_rank(status[0]) ? status[1] : status[0];
}
