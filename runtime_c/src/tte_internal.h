/* Helpers shared by the kernels (not part of the public API). */
#ifndef TTE_INTERNAL_H
#define TTE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tte_runtime.h"

/* clamp(round_half_even(v) + zero_point, qmin, qmax).  v is clamped to [-256, 256] first, which keeps
 * the float32 magic-number rounding exact ((v + 1.5 * 2^23) - 1.5 * 2^23 rounds half to even for
 * |v| < 2^22) and cannot change the clamped result since zero points lie in [-128, 127]. */
static inline int8_t tte_round_clamp(float v, int32_t zero_point, int32_t qmin, int32_t qmax) {
    if (!(v >= -256.0f)) v = -256.0f; /* NaN too, as numpy's reference does on x86 */
    if (v > 256.0f) v = 256.0f;
    float shifted = v + 12582912.0f; /* IEEE float32: the compiler may not fold this away */
    int32_t r = (int32_t)(shifted - 12582912.0f) + zero_point;
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* tte_round_clamp that also records, in the bit-packed `mask` (NULL: not wanted), whether round(v) +
 * zero_point landed inside [qmin, qmax]: where the straight-through gradient passes. */
static inline int8_t tte_round_clamp_mask(float v, int32_t zero_point, int32_t qmin, int32_t qmax, uint8_t *mask,
                                          size_t index) {
    if (!(v >= -256.0f)) v = -256.0f;
    if (v > 256.0f) v = 256.0f;
    float shifted = v + 12582912.0f;
    int32_t r = (int32_t)(shifted - 12582912.0f) + zero_point;
    if (mask) {
        const uint8_t bit = (uint8_t)(1u << (index & 7u));
        if (r >= qmin && r <= qmax) mask[index >> 3] |= bit; else mask[index >> 3] &= (uint8_t)~bit;
    }
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* acc + bias saturated to int32, as float32. */
static inline float tte_acc_to_float(int32_t acc, int32_t bias) {
    int64_t s = (int64_t)acc + (int64_t)bias;
    if (s > INT32_MAX) s = INT32_MAX;
    if (s < INT32_MIN) s = INT32_MIN;
    return (float)(int32_t)s;
}

/* Taps t in [lo, hi) of a window starting at `start` that land inside [0, size): no check in inner loops. */
static inline void tte_tap_range(int32_t start, int32_t taps, int32_t size, int32_t *lo, int32_t *hi) {
    *lo = start < 0 ? -start : 0;
    *hi = size - start < taps ? size - start : taps;
    if (*hi < *lo) *hi = *lo;
}

/* sum over a KH x KW window of one channel plane (H x W) of (x - zx) * (w - wz); taps outside the plane
 * are padding, which reads as zx and so contributes nothing. */
static inline int32_t tte_window_dot_s8(const int8_t *x, int32_t H, int32_t W, int32_t top, int32_t left,
                                        const int8_t *w, int32_t KH, int32_t KW, int32_t zx, int32_t wz) {
    int32_t i0, i1, j0, j1, acc = 0;
    tte_tap_range(top, KH, H, &i0, &i1);
    tte_tap_range(left, KW, W, &j0, &j1);
    for (int32_t i = i0; i < i1; i++) {
        const int8_t *xr = x + (top + i) * W + left;
        const int8_t *wr = w + i * KW;
        for (int32_t j = j0; j < j1; j++) acc += ((int32_t)xr[j] - zx) * ((int32_t)wr[j] - wz);
    }
    return acc;
}

/* Output positions o in [lo, hi) whose tap `t` (stride s, padding p) lands inside [0, size):
 * o * s - p + t in [0, size). */
static inline void tte_out_range(int32_t t, int32_t s, int32_t p, int32_t size, int32_t outs, int32_t *lo,
                                 int32_t *hi) {
    const int32_t a = p - t; /* o * s >= a */
    int32_t l = a <= 0 ? 0 : (a + s - 1) / s;
    const int32_t b = size - 1 + p - t; /* o * s <= b */
    int32_t h = b < 0 ? 0 : b / s + 1;
    if (h > outs) h = outs;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* The KH*KW taps of weight row (o, c) of a conv weight that may be split (see tte_split_weights). */
static inline const int8_t *tte_weight_row(const tte_split_weights *w, int32_t depthwise, int32_t o, int32_t c,
                                           int32_t cg, int32_t kk) {
    if (depthwise)
        return o < w->channels ? w->trained + (size_t)o * kk : w->frozen + (size_t)(o - w->channels) * kk;
    if (c < w->channels) return w->trained + ((size_t)o * w->channels + c) * kk;
    return w->frozen + ((size_t)o * (cg - w->channels) + (c - w->channels)) * kk;
}

/* exp for x <= 0 as tte/reference/grad_kernels.py:expf computes it, operation by operation. */
float tte_expf(float x);

/* The counter-based hash of tte/reference/grad_kernels.py:uniform_hash, a uniform in [0, 1). */
static inline float tte_uniform(uint32_t seed, uint32_t step, uint32_t stream, uint32_t index) {
    uint32_t h = seed ^ (step * 0x9E3779B9u) ^ (stream * 0x632BE5ABu) ^ (index * 0x85EBCA6Bu);
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (float)(h >> 8) * 5.9604644775390625e-08f; /* 2^-24 */
}

#endif /* TTE_INTERNAL_H */
