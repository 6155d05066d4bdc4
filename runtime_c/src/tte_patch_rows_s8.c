#include <string.h>

#include "tte_runtime.h"

/* Copy rows `rows` = {first, end} of each of `planes` planes (n * c of an NCHW tensor, `width` columns) from a buffer
 * holding rows from_rows of them to one holding rows to_rows (a band buffer holds its rows of every plane one plane
 * after the other; a whole tensor is the buffer of rows {0, H}).  Both buffers must hold the rows; they must not
 * overlap. */
tte_status tte_patch_rows_s8(int32_t planes, int32_t width, const int32_t *rows, const int32_t *from_rows,
                             const int8_t *from, const int32_t *to_rows, int8_t *to) {
    if (planes < 0 || width < 0 || rows[0] > rows[1] || rows[0] < from_rows[0] || rows[1] > from_rows[1] ||
        rows[0] < to_rows[0] || rows[1] > to_rows[1])
        return TTE_ERROR_ARGUMENT;
    const size_t w = (size_t)width, n = (size_t)(rows[1] - rows[0]) * w;
    const size_t from_plane = (size_t)(from_rows[1] - from_rows[0]) * w;
    const size_t to_plane = (size_t)(to_rows[1] - to_rows[0]) * w;
    const int8_t *src = from + (size_t)(rows[0] - from_rows[0]) * w;
    int8_t *dst = to + (size_t)(rows[0] - to_rows[0]) * w;
    for (int32_t p = 0; p < planes; p++) memcpy(dst + (size_t)p * to_plane, src + (size_t)p * from_plane, n);
    return TTE_OK;
}

/* The rows a band buffer keeps from one band to the next, moved in place: the buffer held rows from_rows of each of
 * `planes` planes (`width` columns) and now holds rows to_rows; the rows both hold move to their places in the new
 * layout, plane by plane in the order that never overwrites a plane not moved yet (forward when the planes shrink,
 * backward when they grow).  Rows only to_rows holds are left as they are (the band computes them next). */
tte_status tte_patch_keep_s8(int32_t planes, int32_t width, const int32_t *from_rows, const int32_t *to_rows,
                             int8_t *buffer) {
    if (planes < 0 || width < 0 || from_rows[0] > from_rows[1] || to_rows[0] > to_rows[1]) return TTE_ERROR_ARGUMENT;
    const int32_t first = from_rows[0] > to_rows[0] ? from_rows[0] : to_rows[0];
    const int32_t end = from_rows[1] < to_rows[1] ? from_rows[1] : to_rows[1];
    if (first >= end) return TTE_OK;
    const size_t w = (size_t)width, n = (size_t)(end - first) * w;
    const size_t from_plane = (size_t)(from_rows[1] - from_rows[0]) * w;
    const size_t to_plane = (size_t)(to_rows[1] - to_rows[0]) * w;
    const size_t from_skip = (size_t)(first - from_rows[0]) * w, to_skip = (size_t)(first - to_rows[0]) * w;
    if (to_plane <= from_plane) {
        for (int32_t p = 0; p < planes; p++)
            memmove(buffer + (size_t)p * to_plane + to_skip, buffer + (size_t)p * from_plane + from_skip, n);
    } else {
        for (int32_t p = planes - 1; p >= 0; p--)
            memmove(buffer + (size_t)p * to_plane + to_skip, buffer + (size_t)p * from_plane + from_skip, n);
    }
    return TTE_OK;
}

/* Rows new_rows of a streamed input from the caller's row source, into their places in a band buffer of rows
 * window: channel p's row r at buffer + (p * rows + r - window[0]) * width, rows = window[1] - window[0]. */
tte_status tte_patch_fetch_s8(tte_row_source source, void *context, int32_t planes, int32_t width,
                              const int32_t *new_rows, const int32_t *window, int8_t *buffer) {
    if (source == NULL || planes < 0 || width < 0 || new_rows[0] > new_rows[1] || new_rows[0] < window[0] ||
        new_rows[1] > window[1])
        return TTE_ERROR_ARGUMENT;
    const int32_t stride = (window[1] - window[0]) * width;
    for (int32_t r = new_rows[0]; r < new_rows[1]; r++)
        if (source(context, r, buffer + (size_t)(r - window[0]) * (size_t)width, stride) != 0) return TTE_ERROR_SOURCE;
    return TTE_OK;
}
