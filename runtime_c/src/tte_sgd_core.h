/* The update rule shared by every SGD kernel (tte/reference/grad_kernels.py:sgd). */
#ifndef TTE_SGD_CORE_H
#define TTE_SGD_CORE_H

#include <math.h>

#include "tte_internal.h"
#include "tte_runtime.h"

/* v toward zero, saturated to int32, NaN to 0 (for whole numbers: exact within range). */
static inline int32_t tte_f32_to_s32_sat(float v) {
#if defined(__arm__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__GNUC__)
    float t;
    int32_t k;
    __asm__("vcvt.s32.f32 %0, %1" : "=t"(t) : "t"(v)); /* round toward zero, saturating, NaN -> 0 */
    memcpy(&k, &t, 4);
    return k;
#else
    if (v != v) return 0;
    if (v >= 2147483648.0f) return INT32_MAX;
    if (v < -2147483648.0f) return INT32_MIN;
    return (int32_t)v;
#endif
}

/* New value of an integer parameter `current` for gradient `grad` (real units) and factor (real ->
 * integer units); `index` numbers the value within the trained slice (the random stream and the
 * residual use it).  Always inlined: in a caller's loop over a slice, what depends on p alone is computed once. */
TTE_ALWAYS_INLINE int64_t tte_sgd_value(const tte_sgd_params *p, int64_t current, float grad, float factor,
                                        uint32_t index) {
    const float step = (p->lr * grad) * factor;
    float delta;
    switch (p->rounding) {
    case TTE_ROUND_NEAREST: delta = rintf(step); break;
    case TTE_ROUND_TRUNC: delta = truncf(step); break;
    case TTE_ROUND_STOCHASTIC: delta = floorf(step + tte_uniform(p->seed, p->step, p->stream, index)); break;
    default: { /* TTE_ROUND_ACCUMULATE */
        const float total = p->residual[index] + step;
        delta = rintf(total);
        p->residual[index] = total - delta;
    }
    }
    const uint32_t range = (uint32_t)p->qmax - (uint32_t)p->qmin; /* qmax - qmin, modulo 2^32 */
    if (range - 1u < 0x7FFFFFFFu) { /* 1 <= qmax - qmin <= INT32_MAX: every range but (nearly) all of int32 */
        /* in integers: delta (a whole number) converted saturated, NaN to 0 (VCVT does both on a Cortex-M FPU),
         * then limited to +-span, which is exact here (the reference's span, a float64 difference) */
        const int32_t span32 = (int32_t)range;
        int32_t d = tte_f32_to_s32_sat(delta);
        if (d == 0) return current;
        d = d > span32 ? span32 : d < -span32 ? -span32 : d;
        const int64_t v = current - d; /* int64: current may lie anywhere, the range near the int32 limits */
        return v < p->qmin ? p->qmin : v > p->qmax ? p->qmax : v;
    }
    const float span = (float)p->qmax - (float)p->qmin;
    if (delta != delta) delta = 0.0f; /* NaN: a diverged gradient moves nothing */
    if (delta > span) delta = span;
    if (delta < -span) delta = -span;
    /* delta is a whole number within +-span: an int8 or int16 parameter's fits an int32 (a single conversion
     * instruction on a 32-bit core, where the int64 one is a library call); an int32 bias's may need the int64 */
    const int64_t d = delta >= -2147483648.0f && delta < 2147483648.0f ? (int64_t)(int32_t)delta : (int64_t)delta;
    if (d == 0) return current;
    int64_t v = current - d;
    if (v < p->qmin) v = p->qmin;
    if (v > p->qmax) v = p->qmax;
    return v;
}

/* tte_sgd_value over a block of an int8 parameter: w[i * ldw + j] for i < rows, j < cols, gradient g[i * ldg + j],
 * factor factors[i], index index + i * ldw + j (w's offset in the trained slice).  One loop per rounding mode, so
 * that in each the mode is a constant and what depends on p alone (the range, the random stream's seed, step and
 * stream) is computed once per block, not per value. */
#define TTE_SGD_BLOCK                                                                                                 \
    for (int32_t i = 0; i < rows; i++) {                                                                              \
        for (int32_t j = 0; j < cols; j++) {                                                                          \
            int8_t *v = w + i * ldw + j;                                                                              \
            *v = (int8_t)tte_sgd_value(&q, *v, g[i * ldg + j], factors[i], index + (uint32_t)(i * ldw + j));          \
        }                                                                                                             \
    }
TTE_ARM_NOINLINE void tte_sgd_block_s8(const tte_sgd_params *p, int8_t *w, int32_t ldw, const float *g, int32_t ldg,
                                       const float *factors, int32_t rows, int32_t cols, uint32_t index) {
    tte_sgd_params q = *p;
    switch (q.rounding) { /* the mode stored as a constant in each case: the inlined tte_sgd_value folds its switch */
    case TTE_ROUND_STOCHASTIC: q.rounding = TTE_ROUND_STOCHASTIC; TTE_SGD_BLOCK break;
    case TTE_ROUND_NEAREST: q.rounding = TTE_ROUND_NEAREST; TTE_SGD_BLOCK break;
    default: TTE_SGD_BLOCK
    }
}
#undef TTE_SGD_BLOCK

#endif /* TTE_SGD_CORE_H */
