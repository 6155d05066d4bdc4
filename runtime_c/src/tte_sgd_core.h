/* The update rule shared by every SGD kernel (tte/reference/grad_kernels.py:sgd). */
#ifndef TTE_SGD_CORE_H
#define TTE_SGD_CORE_H

#include <math.h>

#include "tte_internal.h"
#include "tte_runtime.h"

/* New value of an integer parameter `current` for gradient `grad` (real units) and factor (real ->
 * integer units); `index` numbers the value within the trained slice (the random stream and the
 * residual use it). */
static inline int64_t tte_sgd_value(const tte_sgd_params *p, int64_t current, float grad, float factor,
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

#endif /* TTE_SGD_CORE_H */
