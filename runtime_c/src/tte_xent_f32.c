#include <math.h>

#include "tte_internal.h"
#include "tte_runtime.h"

/* Per sample: m = max z; e = expf(z - m); s = sum e (ascending); p = e / s; grad = (p - onehot) / n. */
tte_status tte_xent_f32(int32_t n, int32_t k, const float *logits, const int32_t *labels, float *loss, float *grad) {
    double total = 0.0;
    for (int32_t b = 0; b < n; b++) {
        const float *z = logits + (size_t)b * (size_t)k;
        float *d = grad + (size_t)b * (size_t)k;
        if (labels[b] < 0 || labels[b] >= k) return TTE_ERROR_ARGUMENT;
        float m = z[0];
        for (int32_t i = 1; i < k; i++) if (z[i] > m) m = z[i];
        float s = 0.0f;
        for (int32_t i = 0; i < k; i++) {
            d[i] = tte_expf(z[i] - m);
            s += d[i];
        }
        for (int32_t i = 0; i < k; i++) {
            float p = d[i] / s;
            if (i == labels[b]) p = p - 1.0f;
            d[i] = p / (float)n;
        }
        total += log((double)s) - (double)(z[labels[b]] - m);
    }
    *loss = (float)(total / n);
    return TTE_OK;
}
