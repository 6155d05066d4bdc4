#include "tte_grad_core.h"
#include "tte_sgd_core.h"

#if defined(__arm__) && defined(TTE_ARM_ASM) && defined(__ARM_FP) && (__ARM_FP & 4)
/* acc + x[0] + x[1] + ... + x[n - 1], added in that order (n > 0, a multiple of 8): eight values per VLDM, then eight
 * VADDs into one sum (a Cortex-M FPU adds one value per instruction either way; the loads are what this saves). */
TTE_ARM_NOINLINE float tte_sum8_f32(float acc, const float *x, int32_t n) {
    const float *end = x + n;
    __asm__ volatile("1:\n\t"
                     "vldmia %[x]!, {s8-s15}\n\t"
                     "vadd.f32 %[a], %[a], s8\n\t"
                     "vadd.f32 %[a], %[a], s9\n\t"
                     "vadd.f32 %[a], %[a], s10\n\t"
                     "vadd.f32 %[a], %[a], s11\n\t"
                     "vadd.f32 %[a], %[a], s12\n\t"
                     "vadd.f32 %[a], %[a], s13\n\t"
                     "vadd.f32 %[a], %[a], s14\n\t"
                     "vadd.f32 %[a], %[a], s15\n\t"
                     "cmp %[x], %[end]\n\t"
                     "bne 1b"
                     : [a] "+t"(acc), [x] "+&r"(x)
                     : [end] "r"(end)
                     : "cc", "memory", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15");
    return acc;
}
#endif

tte_status tte_bias_update_s32(const tte_dims *dz_dims, const float *dz, const float *factors,
                               const tte_sgd_params *sgd, int32_t *bias) {
    int32_t o = 0;
#if defined(__arm__) && defined(TTE_ARM_ASM) && defined(__ARM_FP) && (__ARM_FP & 4)
    const int32_t O = dz_dims->c, P = dz_dims->h * dz_dims->w;
    if (P >= 8) { /* each channel's sum over samples, then positions, ascending: 8 at a time, then the rest */
        for (; o < O; o++) {
            float acc = 0.0f;
            for (int32_t n = 0; n < dz_dims->n; n++) {
                const float *row = dz + ((size_t)n * (size_t)O + (size_t)o) * (size_t)P;
                acc = tte_sum8_f32(acc, row, P & ~7);
                for (int32_t p = P & ~7; p < P; p++) acc += row[p];
            }
            bias[o] = (int32_t)tte_sgd_value(sgd, bias[o], acc, factors[o], (uint32_t)o);
        }
        return TTE_OK;
    }
#endif
    for (; o + TTE_BIAS_BLOCK <= dz_dims->c; o += TTE_BIAS_BLOCK) {
        float grad[TTE_BIAS_BLOCK];
        tte_bias_grad_block(dz_dims, dz, o, grad);
        for (int32_t k = 0; k < TTE_BIAS_BLOCK; k++)
            bias[o + k] = (int32_t)tte_sgd_value(sgd, bias[o + k], grad[k], factors[o + k], (uint32_t)(o + k));
    }
    for (; o < dz_dims->c; o++)
        bias[o] = (int32_t)tte_sgd_value(sgd, bias[o], tte_bias_grad_row(dz_dims, dz, o), factors[o], (uint32_t)o);
    return TTE_OK;
}
