/* Helpers shared by the kernels (not part of the public API). */
#ifndef TTE_INTERNAL_H
#define TTE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tte_runtime.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* ---- int8 inner products: the portable C99 loops, and with the Arm DSP extension (Cortex-M4 / M7:
 * __ARM_FEATURE_DSP) SXTB16 + SMLAD, two 16-bit multiply-accumulates per instruction.  Both add the same
 * integer products (x - z_x and w - z_w fit in 16 bits: zero points are int8), and integer sums do not
 * depend on their order, so both give the same integers (tests/test_kernels_dsp.py runs the kernels both
 * ways: the portable build on the host, the DSP build under QEMU). */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t tte_ld32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4); /* one unaligned LDR */
    return v;
}
/* bytes (lo[0], lo[1], hi[0], hi[1]) */
static inline int32_t tte_ld16x2(const int8_t *lo, const int8_t *hi) {
    uint16_t a, b;
    memcpy(&a, lo, 2);
    memcpy(&b, hi, 2);
    return (int32_t)((uint32_t)a | ((uint32_t)b << 16));
}
static inline int32_t tte_ror8(int32_t v) { return (int32_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24)); }
/* __sxtb16(tte_ror8(v)) and __sxtab16(a, tte_ror8(v)) in one instruction each (SXTB16 / SXTAB16 rotate their
 * operand; gcc 12 does not fold the rotation in) */
static inline int32_t tte_sxtb16_ror8(int32_t v) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
static inline int32_t tte_sxtab16_ror8(int32_t a, int32_t v) {
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
/* the halfword pair (lo, hi) */
static inline int32_t tte_pair16(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
#endif

/* The hottest loops are inline assembly with their registers allocated by hand (at most 13 core registers each, so
 * that a frame pointer may keep its own); only when optimizing (at -O0 gcc keeps too many registers for itself) and
 * where word loads and stores may be unaligned (they load rows at any offset; -mno-unaligned-access: the C loops). */
#if defined(__thumb2__) && defined(__GNUC__) && defined(__OPTIMIZE__) && defined(__ARM_FEATURE_UNALIGNED)
#define TTE_ARM_ASM 1
#endif

/* round_half_even(v) for the requantization below, exact where it matters: the result only feeds
 * clamp(r + zero_point, qmin, qmax) and its inside-or-not test, with zero points in [-128, 127], so any r beyond
 * [-256, 256] may stand in for r = +-256 as long as it keeps its side (NaN rounds to the low end, semantics.py
 * point 4).  Portable: v is clamped to [-256, 256] first, which keeps the float32 magic-number rounding exact
 * ((v + 1.5 * 2^23) - 1.5 * 2^23 rounds half to even for |v| < 2^22).  On a Cortex-M with an FPU and the DSP
 * extension: VCVTR (the FPSCR's rounding mode, round to nearest even as from reset; int32-saturating), then
 * saturated to [-512, 511]. */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FP) && (__ARM_FP & 4)
static inline int32_t tte_round_s32(float v) {
    if (v != v) return -256;
    float t;
    int32_t r;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(t) : "t"(v));
    memcpy(&r, &t, 4);
    __asm__("ssat %0, #10, %1" : "=r"(r) : "r"(r)); /* to [-512, 511] */
    return r;
}
#else
static inline int32_t tte_round_s32(float v) {
    if (!(v >= -256.0f)) v = -256.0f;
    if (v > 256.0f) v = 256.0f;
    float shifted = v + 12582912.0f; /* IEEE float32: the compiler may not fold this away */
    return (int32_t)(shifted - 12582912.0f);
}
#endif

/* The float kernels' multiply-add: acc + a * b, the product rounded to float32 before the addition, never fused
 * (the reference's arithmetic; builds keep -ffp-contract=off).  A Cortex-M FPU's VMLA.F32 is exactly that (the Arm
 * ARM's chained multiply-accumulate: the product is rounded, then added; VFMA is the fused one): one instruction
 * instead of a VMUL and a VADD, the same bits. */
#if defined(__arm__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__GNUC__)
static inline float tte_mla_f32(float acc, float a, float b) {
    __asm__("vmla.f32 %0, %1, %2" : "+t"(acc) : "t"(a), "t"(b));
    return acc;
}
#else
static inline float tte_mla_f32(float acc, float a, float b) { return acc + a * b; }
#endif

/* Unroll the next loop completely on Arm, so that a tile's accumulators live in registers (GCC's -O2 keeps a
 * small array in memory otherwise); on other targets the compiler vectorizes the loops as they are. */
#if defined(__arm__) && defined(__GNUC__)
#define TTE_ARM_UNROLL _Pragma("GCC unroll 16")
#else
#define TTE_ARM_UNROLL
#endif

/* A static helper that stays a function of its own on Arm: inlined into a large kernel, its loops would share
 * that kernel's 13 registers and keep their values on the stack; elsewhere an inline function. */
#if defined(__arm__) && defined(__GNUC__)
#define TTE_ARM_NOINLINE static __attribute__((noinline, unused))
#else
#define TTE_ARM_NOINLINE static inline
#endif

/* A small helper that every compiler inlines (GCC's heuristics may keep a larger one out of line, and with it its
 * caller's loop invariants). */
#if defined(__GNUC__)
#define TTE_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TTE_ALWAYS_INLINE static inline
#endif

/* clamp(round_half_even(v) + zero_point, qmin, qmax). */
static inline int8_t tte_round_clamp(float v, int32_t zero_point, int32_t qmin, int32_t qmax) {
    int32_t r = tte_round_s32(v) + zero_point;
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* tte_round_clamp that also records, in the bit-packed `mask` (NULL: not wanted), whether round(v) +
 * zero_point landed inside [qmin, qmax]: where the straight-through gradient passes. */
static inline int8_t tte_round_clamp_mask(float v, int32_t zero_point, int32_t qmin, int32_t qmax, uint8_t *mask,
                                          size_t index) {
    int32_t r = tte_round_s32(v) + zero_point;
    if (mask) {
        const uint8_t bit = (uint8_t)(1u << (index & 7u));
        if (r >= qmin && r <= qmax) mask[index >> 3] |= bit; else mask[index >> 3] &= (uint8_t)~bit;
    }
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* acc + bias saturated to int32. */
static inline int32_t tte_add_sat(int32_t acc, int32_t bias) {
    if (bias > 0 && acc > INT32_MAX - bias) return INT32_MAX;
    if (bias < 0 && acc < INT32_MIN - bias) return INT32_MIN;
    return acc + bias;
}

/* acc + bias saturated to int32, as float32. */
static inline float tte_acc_to_float(int32_t acc, int32_t bias) { return (float)tte_add_sat(acc, bias); }

/* ---- TFLite's integer arithmetic (tte/reference/fixedpoint.py; double rounding, as TFLite builds by default) ----
 * Right shifts of negative values are arithmetic (implementation-defined in C99, arithmetic on every compiler tte
 * targets, and what TFLite itself relies on); no signed overflow anywhere. */

/* gemmlowp SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded to nearest, ties upward (the +-2^30 nudge,
 * then C's truncating division); INT32_MIN * INT32_MIN, the one overflow, saturates to INT32_MAX. */
static inline int32_t tte_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent (exponent in [0, 31]) rounded to nearest, ties away from zero. */
static inline int32_t tte_rdbpot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^(shift - 31).  The left shift
 * (shift in [0, 31]) wraps in int32 as TFLite's compiled `x * (1 << shift)` does, without signed overflow. */
static inline int32_t tte_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    return tte_rdbpot(tte_srdhm((int32_t)((uint32_t)x << left), multiplier), shift > 0 ? 0 : -shift);
}

/* clamp(r, qmin, qmax) for an exact integer r, recording in the bit-packed `mask` (NULL: not wanted) whether r
 * lay inside [qmin, qmax]. */
static inline int8_t tte_clamp_mask(int64_t r, int32_t qmin, int32_t qmax, uint8_t *mask, size_t index) {
    if (mask) {
        const uint8_t bit = (uint8_t)(1u << (index & 7u));
        if (r >= qmin && r <= qmax) mask[index >> 3] |= bit; else mask[index >> 3] &= (uint8_t)~bit;
    }
    if (r < qmin) r = qmin;
    if (r > qmax) r = qmax;
    return (int8_t)r;
}

/* The output stage of one conv / gemm output channel, its parameters copied out of memory once per channel
 * (tte_rq_channel): in locals the compiler keeps them in registers, where through the pointers every int8
 * store of an output (which may alias anything) would make it load them again. */
typedef struct {
    int32_t bias, multiplier, shift, zero_point, qmin, qmax;
    float m;
    int q31;
    int finite; /* float32 arithmetic with a finite multiplier: the scaled value is never NaN */
} tte_rq;

static inline tte_rq tte_rq_channel(const tte_quant_params *q, const int32_t *bias, const float *multipliers,
                                    int32_t c) {
    tte_rq r;
    r.bias = bias[c];
    r.q31 = q->multiplier != NULL;
    r.multiplier = r.q31 ? q->multiplier[c] : 0;
    r.shift = r.q31 ? q->shift[c] : 0;
    r.m = r.q31 ? 0.0f : multipliers[c];
    r.zero_point = q->output_zero_point;
    r.qmin = q->qmin;
    r.qmax = q->qmax;
    r.finite = !r.q31 && r.m - r.m == 0.0f; /* false for an infinite or NaN multiplier */
    return r;
}

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FP) && (__ARM_FP & 4)
#define TTE_RQ_DSP 1
/* round_half_even((acc + bias, saturated: QADD) * m) + z_y for a finite m, as tte_round_s32 computes it (VCVTR,
 * then saturated to [-512, 511]) but without its NaN test: with m finite the product is never NaN. */
static inline int32_t tte_rq_round_dsp(const tte_rq *r, int32_t acc) {
    const float v = (float)__qadd(acc, r->bias) * r->m;
    float t;
    int32_t k;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(t) : "t"(v));
    memcpy(&k, &t, 4);
    __asm__("ssat %0, #10, %1" : "=r"(k) : "r"(k)); /* to [-512, 511] */
    return k + r->zero_point;
}
#endif


/* acc + bias (saturated), then TFLite's MBQM by the channel's Q31 multiplier and shift when they are set, else
 * the float32 multiplier; plus z_y, clamped, the mask bit recorded. */
static inline int8_t tte_rq_apply(const tte_rq *r, int32_t acc, uint8_t *mask, size_t index) {
#if defined(TTE_RQ_DSP)
    if (r->finite) {
        const int32_t k = tte_rq_round_dsp(r, acc);
        if (mask) {
            const uint8_t bit = (uint8_t)(1u << (index & 7u));
            if (k >= r->qmin && k <= r->qmax) mask[index >> 3] |= bit; else mask[index >> 3] &= (uint8_t)~bit;
        }
        return (int8_t)(k < r->qmin ? r->qmin : k > r->qmax ? r->qmax : k);
    }
#endif
    if (r->q31)
        return tte_clamp_mask((int64_t)tte_mbqm(tte_add_sat(acc, r->bias), r->multiplier, r->shift) + r->zero_point,
                              r->qmin, r->qmax, mask, index);
    return tte_round_clamp_mask(tte_acc_to_float(acc, r->bias) * r->m, r->zero_point, r->qmin, r->qmax, mask, index);
}

#if defined(TTE_RQ_DSP) && defined(TTE_ARM_ASM)
/* y[i] = clamp(tte_rq_round_dsp(acc[i]) + z_y, qmin, qmax) for i < 4 quads (no mask), four outputs per iteration with
 * the registers allocated by hand: VMOV moves two values between the core and the FPU in one instruction; after
 * VCVTR the results are saturated to 16 bits and paired (outputs i, i + 2 and i + 1, i + 3), z_y added by QADD16,
 * the clamp done two at a time (SSAT16 for the whole int8 range, else SSUB16 + SEL against qmin then qmax), and the
 * four bytes stored as one word.  Each value goes through the same operations as in tte_rq_round_dsp. */
/* The four sums in s12-s15 to halfwords with z_y added, k0 holding outputs 0 and 2, k1 outputs 1 and 3: VCVT, VMUL
 * by m, VCVTR, a two-value VMOV back (TTE_RQ4_CONVERT: k0 .. k3), SSAT to 16 bits, paired by PKHBT, z_y added by
 * QADD16. */
#define TTE_RQ4_CONVERT                                                                                               \
    "vcvt.f32.s32 s12, s12\n\t"                                                                                       \
    "vcvt.f32.s32 s13, s13\n\t"                                                                                       \
    "vcvt.f32.s32 s14, s14\n\t"                                                                                       \
    "vcvt.f32.s32 s15, s15\n\t"                                                                                       \
    "vmul.f32 s12, s12, %[m]\n\t"                                                                                     \
    "vmul.f32 s13, s13, %[m]\n\t"                                                                                     \
    "vmul.f32 s14, s14, %[m]\n\t"                                                                                     \
    "vmul.f32 s15, s15, %[m]\n\t"                                                                                     \
    "vcvtr.s32.f32 s12, s12\n\t"                                                                                      \
    "vcvtr.s32.f32 s13, s13\n\t"                                                                                      \
    "vcvtr.s32.f32 s14, s14\n\t"                                                                                      \
    "vcvtr.s32.f32 s15, s15\n\t"                                                                                      \
    "vmov %[k0], %[k1], s12, s13\n\t"                                                                                 \
    "vmov %[k2], %[k3], s14, s15\n\t"
#define TTE_RQ4_FLOAT                                                                                                 \
    TTE_RQ4_CONVERT                                                                                                   \
    "ssat %[k0], #16, %[k0]\n\t"                                                                                      \
    "ssat %[k1], #16, %[k1]\n\t"                                                                                      \
    "ssat %[k2], #16, %[k2]\n\t"                                                                                      \
    "ssat %[k3], #16, %[k3]\n\t"                                                                                      \
    "pkhbt %[k0], %[k0], %[k2], lsl #16\n\t" /* outputs 0 and 2 */                                                    \
    "pkhbt %[k1], %[k1], %[k3], lsl #16\n\t" /* outputs 1 and 3 */                                                    \
    "qadd16 %[k0], %[k0], %[zp2]\n\t"                                                                                 \
    "qadd16 %[k1], %[k1], %[zp2]\n\t"
/* four sums from acc (advanced), the bias added saturated (QADD), moved to s12-s15 (then TTE_RQ4_FLOAT) */
#define TTE_RQ4_LOAD                                                                                                  \
    "ldrd %[k0], %[k1], [%[acc]], #8\n\t"                                                                             \
    "ldrd %[k2], %[k3], [%[acc]], #8\n\t"                                                                             \
    "qadd %[k0], %[k0], %[bias]\n\t"                                                                                  \
    "qadd %[k1], %[k1], %[bias]\n\t"                                                                                  \
    "qadd %[k2], %[k2], %[bias]\n\t"                                                                                  \
    "qadd %[k3], %[k3], %[bias]\n\t"                                                                                  \
    "vmov s12, s13, %[k0], %[k1]\n\t"                                                                                 \
    "vmov s14, s15, %[k2], %[k3]\n\t"
#define TTE_RQ4_BODY TTE_RQ4_LOAD TTE_RQ4_FLOAT
/* TTE_RQ4_BODY for a bias of 0 (a kernel that starts its sums at the bias): QADD of 0 leaves a value as it is, so
 * the four sums go straight to s12-s15 with one VLDM */
#define TTE_RQ4_LOAD0 "vldmia %[acc]!, {s12-s15}\n\t"
#define TTE_RQ4_BODY0 TTE_RQ4_LOAD0 TTE_RQ4_FLOAT
/* the whole int8 range, four values apart: z_y added by QADD, SSAT to 8 bits, the bytes packed by BFI and stored
 * (the same values as SSAT to 16 bits, QADD16, SSAT16 to 8 bits: a value past 16 bits saturates either way) */
#define TTE_RQ4_FULL(LOAD)                                                                                            \
    LOAD TTE_RQ4_CONVERT                                                                                              \
    "qadd %[k0], %[k0], %[zp]\n\t"                                                                                    \
    "qadd %[k1], %[k1], %[zp]\n\t"                                                                                    \
    "qadd %[k2], %[k2], %[zp]\n\t"                                                                                    \
    "qadd %[k3], %[k3], %[zp]\n\t"                                                                                    \
    "ssat %[k0], #8, %[k0]\n\t"                                                                                       \
    "ssat %[k1], #8, %[k1]\n\t"                                                                                       \
    "ssat %[k2], #8, %[k2]\n\t"                                                                                       \
    "ssat %[k3], #8, %[k3]\n\t"                                                                                       \
    "bfi %[k0], %[k1], #8, #8\n\t"                                                                                    \
    "bfi %[k0], %[k2], #16, #8\n\t"                                                                                   \
    "bfi %[k0], %[k3], #24, #8\n\t"                                                                                   \
    "str %[k0], [%[y]], #4\n\t"
#define TTE_RQ4_STORE                                                                                                 \
    "uxtb16 %[k0], %[k0]\n\t"                                                                                        \
    "uxtb16 %[k1], %[k1]\n\t"                                                                                        \
    "orr %[k0], %[k0], %[k1], lsl #8\n\t"                                                                            \
    "str %[k0], [%[y]], #4\n\t"
TTE_ARM_NOINLINE void tte_rq4_dsp(const tte_rq *r, const int32_t *acc, int32_t quads, int8_t *y) {
    const int32_t bias = r->bias, zp = r->zero_point, zp2 = tte_pair16(zp, zp);
    const int32_t lo2 = tte_pair16(r->qmin, r->qmin), hi2 = tte_pair16(r->qmax, r->qmax);
    const int32_t *end = acc + 4 * quads;
    const float m = r->m;
    int32_t k0, k1, k2, k3;
    if (quads <= 0) return;
#define TTE_RQ4_LOOP(BODY, CLAMP) TTE_RQ4_ASM(BODY CLAMP TTE_RQ4_STORE)
#define TTE_RQ4_ASM(STEP)                                                                                             \
    __asm__ volatile("1:\n\t" STEP "cmp %[acc], %[end]\n\t"                                                         \
                     "bne 1b"                                                                                         \
                     : [acc] "+&r"(acc), [y] "+&r"(y), [k0] "=&r"(k0), [k1] "=&r"(k1), [k2] "=&r"(k2), [k3] "=&r"(k3) \
                     : [end] "r"(end), [bias] "r"(bias), [zp2] "r"(zp2), [lo2] "r"(lo2), [hi2] "r"(hi2), [m] "t"(m),  \
                       [zp] "r"(zp)                                                                                   \
                     : "cc", "memory", "s12", "s13", "s14", "s15")
/* a narrower range than int8's: SSUB16 + SEL against qmin (GE: k >= qmin, per half), then qmax */
#define TTE_RQ4_SEL                                                                                                   \
    "ssub16 %[k2], %[k0], %[lo2]\n\t"                                                                                \
    "sel %[k0], %[k0], %[lo2]\n\t"                                                                                   \
    "ssub16 %[k2], %[hi2], %[k0]\n\t"                                                                                \
    "sel %[k0], %[k0], %[hi2]\n\t"                                                                                   \
    "ssub16 %[k2], %[k1], %[lo2]\n\t"                                                                                \
    "sel %[k1], %[k1], %[lo2]\n\t"                                                                                   \
    "ssub16 %[k2], %[hi2], %[k1]\n\t"                                                                                \
    "sel %[k1], %[k1], %[hi2]\n\t"
    const int full = r->qmin == -128 && r->qmax == 127;
    if (bias == 0 && full)
        TTE_RQ4_ASM(TTE_RQ4_FULL(TTE_RQ4_LOAD0));
    else if (bias == 0)
        TTE_RQ4_LOOP(TTE_RQ4_BODY0, TTE_RQ4_SEL);
    else if (full)
        TTE_RQ4_ASM(TTE_RQ4_FULL(TTE_RQ4_LOAD));
    else
        TTE_RQ4_LOOP(TTE_RQ4_BODY, TTE_RQ4_SEL);
#undef TTE_RQ4_LOOP
#undef TTE_RQ4_ASM
#undef TTE_RQ4_FULL
#undef TTE_RQ4_SEL
}

/* tte_rq4_dsp with the mask: eight outputs per iteration and their mask byte, clamped by SSUB16 + SEL against qmin then
 * qmax, whose GE flags (read by MRS) say which values were inside: bits[j] = qmin <= value j <= qmax. */
TTE_ARM_NOINLINE void tte_rq8_mask_dsp(const tte_rq *r, const int32_t *acc, int32_t bytes, int8_t *y, uint8_t *mask) {
    const int32_t bias = r->bias, zp2 = tte_pair16(r->zero_point, r->zero_point);
    const int32_t lo2 = tte_pair16(r->qmin, r->qmin), hi2 = tte_pair16(r->qmax, r->qmax);
    const int32_t *end = acc + 8 * bytes;
    const float m = r->m;
    int32_t k0, k1, k2, k3, bits;
#define TTE_RQ4_MASK(K, SHIFT)                                                                                        \
    "ssub16 %[k2], " K ", %[lo2]\n\t"                                                                                \
    "sel " K ", " K ", %[lo2]\n\t"                                                                                    \
    "mrs %[k3], apsr\n\t" /* GE[0], GE[2]: lanes >= qmin */                                                          \
    "ssub16 %[k2], %[hi2], " K "\n\t"                                                                                \
    "sel " K ", " K ", %[hi2]\n\t"                                                                                    \
    "mrs %[k2], apsr\n\t" /* lanes <= qmax */                                                                        \
    "and %[k3], %[k3], %[k2]\n\t"                                                                                    \
    "and %[k3], %[k3], #0x50000\n\t"                                                                                 \
    "orr %[bits], %[bits], %[k3], lsr #" SHIFT "\n\t"
    if (bytes <= 0) return;
#define TTE_RQ8_LOOP(BODY)                                                                                            \
    __asm__ volatile("1:\n\t"                                                                                        \
                     "mov %[bits], #0\n\t" BODY TTE_RQ4_MASK("%[k0]", "16") TTE_RQ4_MASK("%[k1]", "15") TTE_RQ4_STORE \
                     BODY TTE_RQ4_MASK("%[k0]", "12") TTE_RQ4_MASK("%[k1]", "11") TTE_RQ4_STORE                      \
                     "strb %[bits], [%[mask]], #1\n\t"                                                               \
                     "cmp %[acc], %[end]\n\t"                                                                        \
                     "bne 1b"                                                                                         \
                     : [acc] "+&r"(acc), [y] "+&r"(y), [mask] "+&r"(mask), [k0] "=&r"(k0), [k1] "=&r"(k1),           \
                       [k2] "=&r"(k2), [k3] "=&r"(k3), [bits] "=&r"(bits)                                             \
                     : [end] "r"(end), [bias] "r"(bias), [zp2] "r"(zp2), [lo2] "r"(lo2), [hi2] "r"(hi2), [m] "t"(m)   \
                     : "cc", "memory", "s12", "s13", "s14", "s15")
    if (bias == 0) /* TTE_RQ4_BODY0 */
        TTE_RQ8_LOOP(TTE_RQ4_BODY0);
    else
        TTE_RQ8_LOOP(TTE_RQ4_BODY);
#undef TTE_RQ8_LOOP
#undef TTE_RQ4_MASK
}
#undef TTE_RQ4_FLOAT
#undef TTE_RQ4_CONVERT
#undef TTE_RQ4_BODY
#undef TTE_RQ4_BODY0
#undef TTE_RQ4_LOAD
#undef TTE_RQ4_LOAD0
#undef TTE_RQ4_STORE
#endif

#if defined(TTE_RQ_DSP)
/* tte_rq_run for a finite float32 multiplier on a Cortex-M (tte_rq_round_dsp), the mask's bits gathered in a
 * register and each byte written once.  Not inlined: in the large kernels that call it, the compiler would keep
 * its constants on the stack. */
TTE_ARM_NOINLINE void tte_rq_run_dsp(const tte_rq *r, const int32_t *acc, int32_t n, int8_t *y,
                                                      uint8_t *mask, size_t index) {
    const tte_rq rq = *r;
    const uint32_t span = (uint32_t)(rq.qmax - rq.qmin);
    int32_t i = 0;
#if defined(TTE_ARM_ASM)
    if (mask == NULL) { /* four at a time (tte_rq4_dsp), then the rest below */
        tte_rq4_dsp(&rq, acc, n / 4, y);
        i = n & ~3;
    }
#endif
    if (mask == NULL && rq.qmin == -128 && rq.qmax == 127) { /* the whole int8 range: SSAT */
        for (; i + 2 <= n; i += 2) {
            int32_t a = tte_rq_round_dsp(&rq, acc[i]), b = tte_rq_round_dsp(&rq, acc[i + 1]);
            __asm__("ssat %0, #8, %1" : "=r"(a) : "r"(a));
            __asm__("ssat %0, #8, %1" : "=r"(b) : "r"(b));
            y[i] = (int8_t)a;
            y[i + 1] = (int8_t)b;
        }
    }
    if (mask == NULL) {
        for (; i < n; i++) {
            const int32_t k = tte_rq_round_dsp(&rq, acc[i]);
            y[i] = (int8_t)(k < rq.qmin ? rq.qmin : k > rq.qmax ? rq.qmax : k);
        }
        return;
    }
    for (; i < n && ((index + (size_t)i) & 7u) != 0u; i++) y[i] = tte_rq_apply(&rq, acc[i], mask, index + (size_t)i);
#if defined(TTE_ARM_ASM)
    tte_rq8_mask_dsp(&rq, acc + i, (n - i) / 8, y + i, mask + ((index + (size_t)i) >> 3));
    i += (n - i) & ~7;
#endif
    for (; i + 8 <= n; i += 8) { /* a whole mask byte: eight bits in a register, one store */
        uint32_t bits = 0u;
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < 8; j++) {
            const int32_t k = tte_rq_round_dsp(&rq, acc[i + j]);
            bits |= (uint32_t)((uint32_t)(k - rq.qmin) <= span) << j; /* qmin <= k <= qmax */
            y[i + j] = (int8_t)(k < rq.qmin ? rq.qmin : k > rq.qmax ? rq.qmax : k);
        }
        mask[(index + (size_t)i) >> 3] = (uint8_t)bits;
    }
    for (; i < n; i++) y[i] = tte_rq_apply(&rq, acc[i], mask, index + (size_t)i);
}
#endif

/* tte_rq_run of a run of at most TTE_RQ_RUN values, float32 multiplier, on a 64-bit host (x86-64, AArch64: float32
 * arithmetic without excess precision): when no acc + bias of the run overflows int32 (tte_add_sat's saturation is
 * then moot), branch-free loops that the compiler vectorizes (tte_round_s32 and tte_round_clamp_mask as selects: the
 * same values and mask bits; the mask's whole bytes packed eight bits at a time); 0 (nothing written) when one would
 * overflow. */
#define TTE_RQ_RUN 32
static inline int tte_rq_run_host(const tte_rq *r, const int32_t *acc, int32_t n, int8_t *y, uint8_t *mask,
                                  size_t index) {
    const float m = r->m;
    const int32_t bias = r->bias, zp = r->zero_point, qmin = r->qmin, qmax = r->qmax;
    int32_t lo = acc[0], hi = acc[0], q[TTE_RQ_RUN];
    uint8_t inside[TTE_RQ_RUN];
    for (int32_t i = 0; i < n; i++) {
        lo = acc[i] < lo ? acc[i] : lo;
        hi = acc[i] > hi ? acc[i] : hi;
    }
    if (bias >= 0 ? hi > INT32_MAX - bias : lo < INT32_MIN - bias) return 0;
    for (int32_t i = 0; i < n; i++) {
        float v = (float)(acc[i] + bias) * m;
        v = v >= -256.0f ? v : -256.0f; /* NaN too */
        v = v <= 256.0f ? v : 256.0f;
        const float shifted = v + 12582912.0f; /* stored as float32, as tte_round_s32 */
        const int32_t k = (int32_t)(shifted - 12582912.0f) + zp;
        inside[i] = (uint8_t)(k >= qmin && k <= qmax);
        q[i] = k < qmin ? qmin : k > qmax ? qmax : k;
    }
    for (int32_t i = 0; i < n; i++) y[i] = (int8_t)q[i];
    if (mask == NULL) return 1;
    int32_t i = 0;
    for (; i < n && ((index + (size_t)i) & 7u) != 0u; i++) {
        const size_t k = index + (size_t)i;
        const uint8_t bit = (uint8_t)(1u << (k & 7u));
        mask[k >> 3] = inside[i] ? (uint8_t)(mask[k >> 3] | bit) : (uint8_t)(mask[k >> 3] & (uint8_t)~bit);
    }
    for (; i + 8 <= n; i += 8) {
        const uint8_t *b = inside + i;
        mask[(index + (size_t)i) >> 3] = (uint8_t)(b[0] | b[1] << 1 | b[2] << 2 | b[3] << 3 | b[4] << 4 | b[5] << 5 |
                                                   b[6] << 6 | b[7] << 7);
    }
    for (; i < n; i++) {
        const size_t k = index + (size_t)i;
        const uint8_t bit = (uint8_t)(1u << (k & 7u));
        mask[k >> 3] = inside[i] ? (uint8_t)(mask[k >> 3] | bit) : (uint8_t)(mask[k >> 3] & (uint8_t)~bit);
    }
    return 1;
}

/* y[i] = tte_rq_apply(r, acc[i], mask, index + i) for i < n: the arithmetic and the mask decided once per run,
 * not per element, so that each loop stays small enough for the compiler to keep it in registers. */
static inline void tte_rq_run(const tte_rq *r, const int32_t *acc, int32_t n, int8_t *y, uint8_t *mask, size_t index) {
    const tte_rq rq = *r;
    if (rq.q31) {
        for (int32_t i = 0; i < n; i++) y[i] = tte_rq_apply(&rq, acc[i], mask, index + (size_t)i);
        return;
    }
#if defined(__x86_64__) || defined(__aarch64__)
    if (n > 0 && n <= TTE_RQ_RUN && tte_rq_run_host(&rq, acc, n, y, mask, index)) return;
#endif
#if defined(TTE_RQ_DSP)
    if (rq.finite) {
        tte_rq_run_dsp(&rq, acc, n, y, mask, index);
        return;
    }
#endif
    const float m = rq.m;
    const int32_t bias = rq.bias, zp = rq.zero_point, qmin = rq.qmin, qmax = rq.qmax;
    if (mask) {
        for (int32_t i = 0; i < n; i++) {
            const int32_t v = tte_round_s32(tte_acc_to_float(acc[i], bias) * m) + zp;
            const size_t k = index + (size_t)i;
            const uint8_t bit = (uint8_t)(1u << (k & 7u));
            if (v >= qmin && v <= qmax) mask[k >> 3] |= bit; else mask[k >> 3] &= (uint8_t)~bit;
            y[i] = (int8_t)(v < qmin ? qmin : v > qmax ? qmax : v);
        }
        return;
    }
    for (int32_t i = 0; i < n; i++) y[i] = tte_round_clamp(tte_acc_to_float(acc[i], bias) * m, zp, qmin, qmax);
}

/* Whether a sum of n products (x - zx) (w - zw), int8 x and w, plus bias stays inside int32 however the products
 * fall: |x - zx| <= 128 + |zx| and |w - zw| <= 128 + |zw|.  Then a kernel may start its sums at the bias (the output
 * stage's saturating add of it would saturate nothing). */
static inline int tte_fold_bias_ok(int32_t bias, int32_t n, int32_t zx, int32_t zw) {
    const int64_t ax = 128 + (zx < 0 ? -(int64_t)zx : (int64_t)zx), aw = 128 + (zw < 0 ? -(int64_t)zw : (int64_t)zw);
    const int64_t ab = bias < 0 ? -(int64_t)bias : (int64_t)bias;
    return ax < (1 << 16) && aw < (1 << 16) && n >= 0 && ab + (int64_t)n * ax * aw < INT32_MAX;
}

#if defined(__ARM_FEATURE_DSP)
/* The value a 1x1 conv's sums start at (offset: -z_x times the weights' sum): offset + bias, r's bias then 0 (so
 * that the output stage loads the sums straight into the FPU) when tte_fold_bias_ok allows it, else offset. */
static inline int32_t tte_sums_start(tte_rq *r, int32_t offset, int32_t n, int32_t zx, int32_t zw) {
    if (r->q31 || !tte_fold_bias_ok(r->bias, n, zx, zw)) return offset;
    offset += r->bias;
    r->bias = 0;
    return offset;
}
#endif

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


/* sum_{i < n} w[i]; with the Arm DSP extension four bytes per word load, summed in two 16-bit lanes (SXTAB16) in
 * blocks of 512 bytes (each lane then holds at most 256 values: no overflow). */
static inline int32_t tte_sum_s8(const int8_t *w, int32_t n) {
    int32_t s = 0, i = 0;
#if defined(__ARM_FEATURE_DSP)
    while (i + 4 <= n) {
        const int32_t end = n - i > 512 ? i + 512 : n - 3;
        int32_t lanes = 0;
        for (; i < end; i += 4) {
            const int32_t v = tte_ld32(w + i);
            lanes = tte_sxtab16_ror8(__sxtab16(lanes, v), v);
        }
        s += (int32_t)(int16_t)(uint16_t)((uint32_t)lanes & 0xFFFFu) + (lanes >> 16);
    }
#endif
    for (; i < n; i++) s += w[i];
    return s;
}

/* Whether a zero point lies in int8's range (the DSP paths rely on it; anything else takes the loops). */
static inline int tte_zp_s8(int32_t z) { return z >= -128 && z <= 127; }

/* Two adjacent positions of a channels-major plane set (x: channel c's value at x[c * P], the next position
 * at x[c * P + 1]) times one weight row: acc[q] += sum_{c < n} x[c * P + q] * (w[c] - wz), q = 0, 1. */
static inline void tte_pw_dot_1x2(const int8_t *x, size_t P, const int8_t *w, int32_t n, int32_t wz, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], c = 0;
#if defined(__ARM_FEATURE_DSP)
    if (tte_zp_s8(wz)) {
        const int32_t nz = tte_pair16(-wz, -wz);
        for (; c + 4 <= n; c += 4) {
            const int8_t *xc = x + (size_t)c * P;
            const int32_t A = tte_ld16x2(xc, xc + 2 * P), B = tte_ld16x2(xc + P, xc + 3 * P);
            const int32_t ww = tte_ld32(w + c);
            const int32_t w02 = __sxtab16(nz, ww), w13 = tte_sxtab16_ror8(nz, ww);
            a0 = __smlad(__sxtb16(A), w02, a0);
            a1 = __smlad(tte_sxtb16_ror8(A), w02, a1);
            a0 = __smlad(__sxtb16(B), w13, a0);
            a1 = __smlad(tte_sxtb16_ror8(B), w13, a1);
        }
    }
#endif
    for (; c < n; c++) {
        const int32_t wc = (int32_t)w[c] - wz;
        const int8_t *xc = x + (size_t)c * P;
        a0 += (int32_t)xc[0] * wc;
        a1 += (int32_t)xc[1] * wc;
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* The portable pointwise path, positions innermost so that the compiler vectorizes it (SIMD lanes across
 * positions, one weight broadcast): acc0[i] += sum_{c < n} x[c * P + i] * (w0[c] - wz0), and the same for a second
 * weight row w1 into acc1 (NULL: none), for i < count (at most TTE_PW_RUN; a full run has constant bounds).
 * Integer sums: the same integers as tte_pw_dot_1x2's in any order. */
#define TTE_PW_RUN 32
static inline void tte_pw_run(const int8_t *x, size_t P, const int8_t *w0, const int8_t *w1, int32_t n, int32_t wz0,
                              int32_t wz1, int32_t *acc0, int32_t *acc1, int32_t count) {
    if (count == TTE_PW_RUN && w1 != NULL) {
        for (int32_t c = 0; c < n; c++) {
            const int32_t u = (int32_t)w0[c] - wz0, v = (int32_t)w1[c] - wz1;
            const int8_t *xc = x + (size_t)c * P;
            for (int32_t i = 0; i < TTE_PW_RUN; i++) {
                acc0[i] += (int32_t)xc[i] * u;
                acc1[i] += (int32_t)xc[i] * v;
            }
        }
        return;
    }
    if (count == TTE_PW_RUN) {
        for (int32_t c = 0; c < n; c++) {
            const int32_t u = (int32_t)w0[c] - wz0;
            const int8_t *xc = x + (size_t)c * P;
            for (int32_t i = 0; i < TTE_PW_RUN; i++) acc0[i] += (int32_t)xc[i] * u;
        }
        return;
    }
    for (int32_t c = 0; c < n; c++) {
        const int32_t u = (int32_t)w0[c] - wz0, v = w1 != NULL ? (int32_t)w1[c] - wz1 : 0;
        const int8_t *xc = x + (size_t)c * P;
        for (int32_t i = 0; i < count; i++) acc0[i] += (int32_t)xc[i] * u;
        if (w1 != NULL)
            for (int32_t i = 0; i < count; i++) acc1[i] += (int32_t)xc[i] * v;
    }
}

/* acc[i] = offset + sum_{c < n} x[c * P + i] * (w[c] - wz) for i < count (a function of its own on Arm, so that
 * its loop keeps its values in registers).  With the Arm DSP extension, four positions at a time: one word load per
 * channel gives its four positions, which PKHBT / PKHTB pair with channel c + 2's for SMLAD against the weight pair
 * (w[c], w[c + 2]); then tte_pw_dot_1x2 two positions at a time. */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t tte_pkhbt16(int32_t lo, int32_t hi) { /* (lo's low half, hi's low half) */
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}
static inline int32_t tte_pkhtb16(int32_t hi, int32_t lo) { /* (lo's high half, hi's high half) */
    int32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(hi), "r"(lo));
    return r;
}
#endif
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
/* The four positions of a channel pair, t = (c: 0 1, c': 0 1) and u = (c: 2 3, c': 2 3) as PKHBT / PKHTB leave them,
 * spread by SXTB16 into (c, c') halfword pairs (v) and multiplied by the weight pair W into a0 .. a3. */
#define TTE_PW_PAIRS4(W)                                                                                              \
    "sxtb16 %[v], %[t]\n\t"                                                                                          \
    "smlad %[a0], %[v], " W ", %[a0]\n\t"                                                                            \
    "sxtb16 %[v], %[t], ror #8\n\t"                                                                                  \
    "smlad %[a1], %[v], " W ", %[a1]\n\t"                                                                            \
    "sxtb16 %[v], %[u]\n\t"                                                                                          \
    "smlad %[a2], %[v], " W ", %[a2]\n\t"                                                                            \
    "sxtb16 %[v], %[u], ror #8\n\t"                                                                                  \
    "smlad %[a3], %[v], " W ", %[a3]\n\t"
/* acc[q] += sum_{c < 4 groups} x[c * P + q] * w[c], q = 0 .. 3 (symmetric weights; groups >= 1), as tte_pw_acc_s8's
 * DSP loop but with its registers allocated by hand (the compiler's version kept half its values on the stack): per
 * 4 channels, a word of 4 positions from each, PKHBT / PKHTB pairing channels c and c + 2 (then c + 1 and c + 3),
 * SXTB16 spreading a pair per position, one SMLAD per position against the weight pair. */
TTE_ARM_NOINLINE void tte_pw_quad_s8(const int8_t *x, int32_t P, const int8_t *w, int32_t groups, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], u, v, t, wv;
    const int8_t *xb = x + 2 * P, *wend = w + 4 * groups;
    __asm__("1:\n\t"
            "ldr %[u], [%[xa]]\n\t"          /* channel c, positions 0 .. 3 */
            "ldr %[v], [%[xb]]\n\t"          /* channel c + 2 */
            "ldr %[wv], [%[w]]\n\t"
            "pkhbt %[t], %[u], %[v], lsl #16\n\t" /* (u0 u1 v0 v1) */
            "pkhtb %[u], %[v], %[u], asr #16\n\t" /* (u2 u3 v2 v3) */
            "sxtb16 %[wv], %[wv]\n\t"        /* (w0, w2) */
            TTE_PW_PAIRS4("%[wv]")
            "ldr %[u], [%[xa], %[P]]\n\t"    /* channel c + 1 */
            "ldr %[v], [%[xb], %[P]]\n\t"    /* channel c + 3 */
            "ldr %[wv], [%[w]], #4\n\t"
            "pkhbt %[t], %[u], %[v], lsl #16\n\t"
            "pkhtb %[u], %[v], %[u], asr #16\n\t"
            "sxtb16 %[wv], %[wv], ror #8\n\t" /* (w1, w3) */
            TTE_PW_PAIRS4("%[wv]")
            "add %[xa], %[xa], %[P], lsl #2\n\t"
            "add %[xb], %[xb], %[P], lsl #2\n\t"
            "cmp %[w], %[wend]\n\t"
            "bne 1b"
            : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [xa] "+&r"(x), [xb] "+&r"(xb),
              [w] "+&r"(w), [u] "=&r"(u), [v] "=&r"(v), [t] "=&r"(t), [wv] "=&r"(wv)
            : [P] "r"(P), [wend] "r"(wend)
            : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#endif
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
/* acc[q] += sum_{c < 4} x[c * P + q] * w[c] for q < 4 quads (one group of 4 channels, symmetric weights, quads >= 1):
 * tte_pw_quad_s8's step with the positions innermost, the accumulators in memory (for few channels, where a call per 4
 * positions would cost as much as its multiply-accumulates). */
TTE_ARM_NOINLINE void tte_pw_group_s8(const int8_t *x, int32_t P, const int8_t *w, int32_t quads, int32_t *acc) {
    const int32_t ww = tte_ld32(w), w02 = __sxtb16(ww), w13 = tte_sxtb16_ror8(ww);
    const int32_t *end = acc + 4 * quads;
    int32_t a0, a1, a2, a3, u, v, t;
    __asm__ volatile("1:\n\t"
                     "ldrd %[a0], %[a1], [%[acc]]\n\t"
                     "ldrd %[a2], %[a3], [%[acc], #8]\n\t"
                     "ldr %[u], [%[x]]\n\t"       /* channel c, positions 0 .. 3 */
                     "ldr %[v], [%[x], %[P], lsl #1]\n\t" /* channel c + 2 */
                     "pkhbt %[t], %[u], %[v], lsl #16\n\t"
                     "pkhtb %[u], %[v], %[u], asr #16\n\t"
                     TTE_PW_PAIRS4("%[w02]")
                     "ldr %[u], [%[x], %[P]]\n\t" /* channel c + 1 */
                     "add %[t], %[x], %[P]\n\t"
                     "ldr %[v], [%[t], %[P], lsl #1]\n\t" /* channel c + 3 */
                     "pkhbt %[t], %[u], %[v], lsl #16\n\t"
                     "pkhtb %[u], %[v], %[u], asr #16\n\t"
                     TTE_PW_PAIRS4("%[w13]")
                     "strd %[a0], %[a1], [%[acc]], #8\n\t"
                     "strd %[a2], %[a3], [%[acc]], #8\n\t"
                     "add %[x], %[x], #4\n\t"
                     "cmp %[acc], %[end]\n\t"
                     "bne 1b"
                     : [x] "+&r"(x), [acc] "+&r"(acc), [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),
                       [u] "=&r"(u), [v] "=&r"(v), [t] "=&r"(t)
                     : [P] "r"(P), [end] "r"(end), [w02] "r"(w02), [w13] "r"(w13)
                     : "cc", "memory");
}
#undef TTE_PW_PAIRS4
#endif
TTE_ARM_NOINLINE void tte_pw_acc_s8(const int8_t *x, size_t P, const int8_t *w, int32_t n, int32_t wz, int32_t offset,
                                    int32_t count, int32_t *acc) {
    int32_t i = 0;
#if defined(__ARM_FEATURE_DSP)
#if defined(TTE_ARM_ASM)
    if (wz == 0 && n >= 4 && n <= 32 && count >= 4) { /* few channels: a group of 4 at a time over every position */
        const int32_t quads = count / 4;
        for (int32_t q = 0; q < 4 * quads; q++) acc[q] = offset;
        for (int32_t c = 0; c + 4 <= n; c += 4) tte_pw_group_s8(x + (size_t)c * P, (int32_t)P, w + c, quads, acc);
        for (int32_t c = n & ~3; c < n; c++) { /* the channels past the groups of 4 */
            const int8_t *xc = x + (size_t)c * P;
            for (int32_t q = 0; q < 4 * quads; q++) acc[q] += (int32_t)xc[q] * (int32_t)w[c];
        }
        i = 4 * quads;
    }
    if (wz == 0 && n >= 4) {
        for (; i + 4 <= count; i += 4) {
            int32_t a[4] = {offset, offset, offset, offset};
            tte_pw_quad_s8(x + i, (int32_t)P, w, n / 4, a);
            for (int32_t c = n & ~3; c < n; c++) { /* the channels past the groups of 4 */
                const int8_t *xc = x + (size_t)c * P + (size_t)i;
                for (int32_t q = 0; q < 4; q++) a[q] += (int32_t)xc[q] * (int32_t)w[c];
            }
            memcpy(acc + i, a, sizeof a);
        }
    }
#endif
    if (tte_zp_s8(wz) && n >= 4) {
        const int32_t nz = tte_pair16(-wz, -wz);
        for (; i + 4 <= count; i += 4) {
            int32_t a0 = offset, a1 = offset, a2 = offset, a3 = offset, c = 0;
            for (; c + 4 <= n; c += 4) {
                const int8_t *xc = x + (size_t)c * P + (size_t)i;
                const int32_t ww = tte_ld32(w + c), w02 = __sxtab16(nz, ww), w13 = tte_sxtab16_ror8(nz, ww);
                const int32_t u = tte_ld32(xc), v = tte_ld32(xc + 2 * P); /* channels c, c + 2 */
                const int32_t u02 = __sxtb16(u), u13 = tte_sxtb16_ror8(u), v02 = __sxtb16(v), v13 = tte_sxtb16_ror8(v);
                a0 = __smlad(tte_pkhbt16(u02, v02), w02, a0);
                a1 = __smlad(tte_pkhbt16(u13, v13), w02, a1);
                a2 = __smlad(tte_pkhtb16(v02, u02), w02, a2);
                a3 = __smlad(tte_pkhtb16(v13, u13), w02, a3);
                const int32_t s = tte_ld32(xc + P), t = tte_ld32(xc + 3 * P); /* channels c + 1, c + 3 */
                const int32_t s02 = __sxtb16(s), s13 = tte_sxtb16_ror8(s), t02 = __sxtb16(t), t13 = tte_sxtb16_ror8(t);
                a0 = __smlad(tte_pkhbt16(s02, t02), w13, a0);
                a1 = __smlad(tte_pkhbt16(s13, t13), w13, a1);
                a2 = __smlad(tte_pkhtb16(t02, s02), w13, a2);
                a3 = __smlad(tte_pkhtb16(t13, s13), w13, a3);
            }
            for (; c < n; c++) {
                const int8_t *xc = x + (size_t)c * P + (size_t)i;
                const int32_t wc = (int32_t)w[c] - wz;
                a0 += (int32_t)xc[0] * wc;
                a1 += (int32_t)xc[1] * wc;
                a2 += (int32_t)xc[2] * wc;
                a3 += (int32_t)xc[3] * wc;
            }
            acc[i] = a0;
            acc[i + 1] = a1;
            acc[i + 2] = a2;
            acc[i + 3] = a3;
        }
    }
#endif
    for (; i + 1 < count; i += 2) {
        acc[i] = acc[i + 1] = offset;
        tte_pw_dot_1x2(x + i, P, w, n, wz, acc + i);
    }
    if (i < count) { /* an odd count: the last position */
        int32_t a = offset;
        for (int32_t c = 0; c < n; c++) a += (int32_t)x[(size_t)c * P + (size_t)i] * ((int32_t)w[c] - wz);
        acc[i] = a;
    }
}

#if defined(__ARM_FEATURE_DSP)
/* acc0[i] += sum_{c < n} x[c * P + i] * w0[c] and acc1[i] the same with w1, for i < count (the pointwise conv's
 * symmetric weights): two weight rows x two positions per iteration, four channels per SMLAD group (each input
 * halfword pair loaded once for both rows); a function of its own, so that its loop keeps its values in registers. */
TTE_ARM_NOINLINE void tte_pw_acc2_s8(const int8_t *x, size_t P, const int8_t *w0, const int8_t *w1, int32_t n,
                                     int32_t count, int32_t *acc0, int32_t *acc1) {
    int32_t i = 0;
    for (; i + 1 < count; i += 2) {
        int32_t a00 = acc0[i], a01 = acc0[i + 1], a10 = acc1[i], a11 = acc1[i + 1], c = 0;
        size_t at = (size_t)i; /* an offset, not a pointer: it may run past the planes when the loop ends */
        for (; c + 4 <= n; c += 4, at += 4 * P) {
            const int8_t *xc = x + at, *xd = xc + 2 * P; /* channels c (and c + 1), c + 2 (and c + 3) */
            const int32_t A = tte_ld16x2(xc, xd), B = tte_ld16x2(xc + P, xd + P);
            const int32_t A0 = __sxtb16(A), A1 = tte_sxtb16_ror8(A), B0 = __sxtb16(B), B1 = tte_sxtb16_ror8(B);
            const int32_t u = tte_ld32(w0 + c), v = tte_ld32(w1 + c);
            const int32_t u02 = __sxtb16(u), u13 = tte_sxtb16_ror8(u), v02 = __sxtb16(v), v13 = tte_sxtb16_ror8(v);
            a00 = __smlad(B0, u13, __smlad(A0, u02, a00));
            a01 = __smlad(B1, u13, __smlad(A1, u02, a01));
            a10 = __smlad(B0, v13, __smlad(A0, v02, a10));
            a11 = __smlad(B1, v13, __smlad(A1, v02, a11));
        }
        for (; c < n; c++, at += P) {
            const int8_t *xc = x + at;
            const int32_t x0 = xc[0], x1 = xc[1];
            a00 += x0 * w0[c];
            a01 += x1 * w0[c];
            a10 += x0 * w1[c];
            a11 += x1 * w1[c];
        }
        acc0[i] = a00;
        acc0[i + 1] = a01;
        acc1[i] = a10;
        acc1[i + 1] = a11;
    }
    for (; i < count; i++) /* an odd count: the last position */
        for (int32_t c = 0; c < n; c++) {
            acc0[i] += (int32_t)x[(size_t)c * P + (size_t)i] * (int32_t)w0[c];
            acc1[i] += (int32_t)x[(size_t)c * P + (size_t)i] * (int32_t)w1[c];
        }
}
#endif

/* sum_{i < n} (x[i] - zx) * (w[i] - wz) over contiguous rows. */
static inline int32_t tte_dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t zx, int32_t wz) {
    int32_t acc = 0, i = 0;
#if defined(__ARM_FEATURE_DSP)
    if (tte_zp_s8(zx) && tte_zp_s8(wz)) {
        const int32_t nzx = tte_pair16(-zx, -zx), nzw = tte_pair16(-wz, -wz);
        for (; i + 4 <= n; i += 4) {
            const int32_t a = tte_ld32(x + i), b = tte_ld32(w + i);
            acc = __smlad(__sxtab16(nzx, a), __sxtab16(nzw, b), acc);
            acc = __smlad(tte_sxtab16_ror8(nzx, a), tte_sxtab16_ror8(nzw, b), acc);
        }
    }
#endif
    for (; i < n; i++) acc += ((int32_t)x[i] - zx) * ((int32_t)w[i] - wz);
    return acc;
}

/* A depthwise (or single-channel) window that lies wholly inside the plane, with the weights already offset
 * (wk[t] = w[t] - z_w, in 16 bits) and `offset` = -z_x * sum_t wk[t]: offset + sum_t x * wk[t], no tap checks.
 * `x` is the window's top-left input, W the plane's row stride. */
static inline int32_t tte_window_interior_s8(const int8_t *x, int32_t W, const int16_t *wk, int32_t KH, int32_t KW,
                                             int32_t offset) {
    int32_t acc = offset;
    for (int32_t i = 0; i < KH; i++) {
        const int8_t *xr = x + i * W;
        const int16_t *wr = wk + i * KW;
        for (int32_t j = 0; j < KW; j++) acc += (int32_t)xr[j] * (int32_t)wr[j];
    }
    return acc;
}

/* Outputs o in [lo, hi) of one axis whose whole window o * s - p + [0, k) lies inside [0, size). */
static inline void tte_interior_range(int32_t s, int32_t p, int32_t k, int32_t size, int32_t outs, int32_t *lo,
                                      int32_t *hi) {
    int32_t l = (p + s - 1) / s, h = size + p - k < 0 ? 0 : (size + p - k) / s + 1;
    if (h > outs) h = outs;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Up to this many taps, depthwise windows inside the plane take tte_window_interior_s8. */
#define TTE_DW_FAST_TAPS 64

/* wk[t] = w[t] - wz and *offset = -zx * sum_t wk[t] for tte_window_interior_s8; 0 when it cannot be used. */
static inline int tte_dw_prepare(const int8_t *w, int32_t kk, int32_t wz, int32_t zx, int16_t *wk, int32_t *offset) {
    if (kk > TTE_DW_FAST_TAPS || !tte_zp_s8(wz)) return 0;
    int32_t s = 0;
    for (int32_t t = 0; t < kk; t++) {
        wk[t] = (int16_t)((int32_t)w[t] - wz);
        s += wk[t];
    }
    *offset = -zx * s;
    return 1;
}

#if defined(__ARM_FEATURE_DSP)
/* tte_window_interior_s8 two taps per SMLAD: (x[j], x[j + 1]) from a halfword load (spread to bytes 0 and 2, then
 * SXTB16) against the weight pair (wk[j], wk[j + 1]) loaded as one word; loops unrolled where KH and KW are constants
 * of the call. */
static inline int32_t tte_window_pairs_s8(const int8_t *x, int32_t W, const int16_t *wk, int32_t KH, int32_t KW,
                                          int32_t acc) {
    TTE_ARM_UNROLL
    for (int32_t r = 0; r < KH; r++) {
        const int8_t *xr = x + r * W;
        const int16_t *wr = wk + r * KW;
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < KW - 1; j += 2) {
            uint16_t h;
            int32_t wpair;
            memcpy(&h, xr + j, 2);
            memcpy(&wpair, wr + j, 4);
            acc = __smlad(__sxtb16((int32_t)((uint32_t)h | ((uint32_t)h << 8))), wpair, acc);
        }
        if (KW & 1) acc += (int32_t)xr[KW - 1] * (int32_t)wr[KW - 1];
    }
    return acc;
}
#endif

/* n interior outputs of one row, left to right (stride sw): acc[i] = offset + the window at x + i * sw (x: the
 * first window's top-left input, W: the row stride), weights offset as in tte_window_interior_s8.  3x3 windows
 * are unrolled; with the Arm DSP extension they take SXTB16 + SMLAD: at stride 1 one word load per row serves
 * two outputs (x0..x3: (x0, x2) . (w0, w2) + x1 * w1 and (x1, x3) . (w0, w2) + x2 * w1). */
#if defined(__ARM_FEATURE_DSP)
/* The weight pairs of tte_dw_row_s8's 5x5 / 7x7 rows at stride 1, per tap row r: (w0, w2), (w1, w3), then 5x5: w4,
 * 0; 7x7: (w4, w6), w5. */
static inline void tte_dw57_weights(const int16_t *wk, int32_t KH, int32_t KW, int32_t wp[7][4]) {
    for (int32_t r = 0; r < KH; r++) {
        const int16_t *wr = wk + r * KW;
        wp[r][0] = tte_pair16(wr[0], wr[2]);
        wp[r][1] = tte_pair16(wr[1], wr[3]);
        wp[r][2] = KW == 5 ? wr[4] : tte_pair16(wr[4], wr[6]);
        wp[r][3] = KW == 5 ? 0 : wr[5];
    }
}
#endif

/* wp57: tte_dw57_weights of wk when KH = KW = 5 or 7 (made once per plane by the caller), else NULL */
static inline void tte_dw_row_s8(const int8_t *x, int32_t W, int32_t sw, const int16_t *wk, int32_t KH, int32_t KW,
                                 int32_t offset, int32_t n, int32_t *acc, const int32_t (*wp57)[4]) {
    int32_t i = 0;
#if !defined(__ARM_FEATURE_DSP)
    (void)wp57;
#endif
    if (KH == 3 && KW == 3) {
        const int8_t *r0 = x, *r1 = x + W, *r2 = x + 2 * W;
#if defined(__ARM_FEATURE_DSP)
        const int32_t a02 = tte_pair16(wk[0], wk[2]), a1 = wk[1], b02 = tte_pair16(wk[3], wk[5]), b1 = wk[4];
        const int32_t c02 = tte_pair16(wk[6], wk[8]), c1 = wk[7];
        if (sw == 1) {
            for (; i + 2 <= n; i += 2) {
                const int32_t u = tte_ld32(r0 + i), v = tte_ld32(r1 + i), t = tte_ld32(r2 + i);
                const int32_t u02 = __sxtb16(u), u13 = tte_sxtb16_ror8(u);
                const int32_t v02 = __sxtb16(v), v13 = tte_sxtb16_ror8(v);
                const int32_t t02 = __sxtb16(t), t13 = tte_sxtb16_ror8(t);
                int32_t s0 = __smlad(u02, a02, offset), s1 = __smlad(u13, a02, offset);
                s0 = __smlabb(u13, a1, s0);
                s1 = __smlatb(u02, a1, s1);
                s0 = __smlad(v02, b02, s0);
                s1 = __smlad(v13, b02, s1);
                s0 = __smlabb(v13, b1, s0);
                s1 = __smlatb(v02, b1, s1);
                s0 = __smlad(t02, c02, s0);
                s1 = __smlad(t13, c02, s1);
                acc[i] = __smlabb(t13, c1, s0);
                acc[i + 1] = __smlatb(t02, c1, s1);
            }
        } else if (sw == 2) {
            for (; i + 2 <= n; i += 2) { /* outputs i, i + 1: inputs 2i .. 2i + 4 */
                const int32_t j = 2 * i;
                const int32_t u = tte_ld32(r0 + j), v = tte_ld32(r1 + j), t = tte_ld32(r2 + j);
                const int32_t u02 = __sxtb16(u), u13 = tte_sxtb16_ror8(u);
                const int32_t v02 = __sxtb16(v), v13 = tte_sxtb16_ror8(v);
                const int32_t t02 = __sxtb16(t), t13 = tte_sxtb16_ror8(t);
                int32_t s0 = __smlad(u02, a02, offset), s1 = __smlatb(u02, a02, offset);
                s0 = __smlabb(u13, a1, s0);
                s1 = __smlatb(u13, a1, s1);
                s1 += r0[j + 4] * wk[2];
                s0 = __smlad(v02, b02, s0);
                s1 = __smlatb(v02, b02, s1);
                s0 = __smlabb(v13, b1, s0);
                s1 = __smlatb(v13, b1, s1);
                s1 += r1[j + 4] * wk[5];
                s0 = __smlad(t02, c02, s0);
                s1 = __smlatb(t02, c02, s1);
                acc[i] = __smlabb(t13, c1, s0);
                s1 = __smlatb(t13, c1, s1);
                acc[i + 1] = s1 + r2[j + 4] * wk[8];
            }
        }
#endif
        const int32_t w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7],
                      w8 = wk[8];
        /* strides 1 and 2 as constants: the compiler vectorizes them (a runtime stride it does not) */
#define TTE_DW3_ROW(S)                                                                                                \
    for (; i < n; i++) {                                                                                              \
        const int32_t j = i * (S);                                                                                    \
        acc[i] = offset + r0[j] * w0 + r0[j + 1] * w1 + r0[j + 2] * w2 + r1[j] * w3 + r1[j + 1] * w4 +                \
                 r1[j + 2] * w5 + r2[j] * w6 + r2[j + 1] * w7 + r2[j + 2] * w8;                                       \
    }
        if (sw == 1) {
            TTE_DW3_ROW(1)
        } else if (sw == 2) {
            TTE_DW3_ROW(2)
        } else {
            TTE_DW3_ROW(sw)
        }
#undef TTE_DW3_ROW
        return;
    }
#if defined(__ARM_FEATURE_DSP)
    /* 5x5 and 7x7 at stride 1, two outputs at a time: per tap row, x0..x5 (5x5: a word and two bytes) or x0..x7
     * (7x7: two words), exactly the bytes the two windows read, spread by SXTB16 into (x0, x2), (x1, x3), ...:
     * 5x5: (x0, x2).(w0, w2) + (x1, x3).(w1, w3) + x4 w4 and (x1, x3).(w0, w2) + x2 w1 + x4 w3 + x5 w4;
     * 7x7: the same pairs for w0..w3, then (x4, x6).(w4, w6) + x5 w5 and (x5, x7).(w4, w6) + x4 w3 + x6 w5 */
    if (((KH == 5 && KW == 5) || (KH == 7 && KW == 7)) && sw == 1 && n >= 2) {
        int32_t own[7][4];
        if (wp57 == NULL) tte_dw57_weights(wk, KH, KW, own);
        const int32_t (*wp)[4] = wp57 ? wp57 : (const int32_t (*)[4])own;
        for (; i + 2 <= n; i += 2) {
            int32_t s0 = offset, s1 = offset;
            if (KW == 5) {
                for (int32_t r = 0; r < 5; r++) {
                    const int8_t *xr = x + r * W + i;
                    const int32_t u = tte_ld32(xr), u02 = __sxtb16(u), u13 = tte_sxtb16_ror8(u);
                    const int32_t x4 = xr[4], x5 = xr[5];
                    s0 = __smlad(u02, wp[r][0], s0);
                    s0 = __smlad(u13, wp[r][1], s0);
                    s0 = __smlabb(x4, wp[r][2], s0);
                    s1 = __smlad(u13, wp[r][0], s1);
                    s1 = __smlatb(u02, wp[r][1], s1);
                    s1 = __smlabt(x4, wp[r][1], s1);
                    s1 = __smlabb(x5, wp[r][2], s1);
                }
            } else {
                for (int32_t r = 0; r < 7; r++) {
                    const int8_t *xr = x + r * W + i;
                    const int32_t u = tte_ld32(xr), u02 = __sxtb16(u), u13 = tte_sxtb16_ror8(u);
                    const int32_t v = tte_ld32(xr + 4), v02 = __sxtb16(v), v13 = tte_sxtb16_ror8(v);
                    s0 = __smlad(u02, wp[r][0], s0);
                    s0 = __smlad(u13, wp[r][1], s0);
                    s0 = __smlad(v02, wp[r][2], s0);
                    s0 = __smlabb(v13, wp[r][3], s0);
                    s1 = __smlad(u13, wp[r][0], s1);
                    s1 = __smlatb(u02, wp[r][1], s1);
                    s1 = __smlabt(v02, wp[r][1], s1);
                    s1 = __smlad(v13, wp[r][2], s1);
                    s1 = __smlatb(v02, wp[r][3], s1);
                }
            }
            acc[i] = s0;
            acc[i + 1] = s1;
        }
    }
    /* 5x5 and 7x7 windows one at a time (other strides, and an odd last window) when the caller made the weight
     * pairs: per tap row a word x0..x3 spread to (x0, x2), (x1, x3) for (w0, w2), (w1, w3), then 5x5: x4 w4; 7x7: a
     * word x3..x6 spread to (x3, x5), (x4, x6): (x4, x6) for (w4, w6) and x5 w5 (every byte read inside the window) */
#define TTE_DW57_ONE(K)                                                                                               \
    for (; i < n; i++) {                                                                                              \
        const int8_t *xw = x + i * sw;                                                                                \
        int32_t s0 = offset;                                                                                          \
        TTE_ARM_UNROLL                                                                                                \
        for (int32_t r = 0; r < (K); r++) {                                                                           \
            const int8_t *xr = xw + r * W;                                                                            \
            const int32_t u = tte_ld32(xr);                                                                           \
            s0 = __smlad(__sxtb16(u), wp57[r][0], s0);                                                                \
            s0 = __smlad(tte_sxtb16_ror8(u), wp57[r][1], s0);                                                         \
            if ((K) == 5) {                                                                                           \
                s0 = __smlabb(xr[4], wp57[r][2], s0);                                                                 \
            } else {                                                                                                  \
                const int32_t v = tte_ld32(xr + 3);                                                                   \
                s0 = __smlad(tte_sxtb16_ror8(v), wp57[r][2], s0);                                                     \
                s0 = __smlatb(__sxtb16(v), wp57[r][3], s0);                                                           \
            }                                                                                                         \
        }                                                                                                             \
        acc[i] = s0;                                                                                                  \
    }
    if (wp57 != NULL && KH == 5 && KW == 5) {
        TTE_DW57_ONE(5)
    } else if (wp57 != NULL && KH == 7 && KW == 7) {
        TTE_DW57_ONE(7)
    }
#undef TTE_DW57_ONE
    /* other kernels: two taps per SMLAD (tte_window_pairs_s8), square 5x5 and 7x7 ones unrolled */
    if (KH == 5 && KW == 5) {
        for (; i < n; i++) acc[i] = tte_window_pairs_s8(x + i * sw, W, wk, 5, 5, offset);
    } else if (KH == 7 && KW == 7) {
        for (; i < n; i++) acc[i] = tte_window_pairs_s8(x + i * sw, W, wk, 7, 7, offset);
    } else {
        for (; i < n; i++) acc[i] = tte_window_pairs_s8(x + i * sw, W, wk, KH, KW, offset);
    }
#endif
    for (; i < n; i++) acc[i] = tte_window_interior_s8(x + i * sw, W, wk, KH, KW, offset);
}

/* A plane of H rows of W bytes (row stride W) copied into one of WP-byte rows with PT rows and PL columns of padding
 * before it, every padding byte z; small planes: on Arm the library's memset / memcpy (newlib's byte loops, a call
 * per row) would cost more than the windows, so words are stored (unaligned word access: Cortex-M3 and later). */
static inline void tte_pad_plane_s8(int8_t *dst, int32_t HP, int32_t WP, const int8_t *x, int32_t H, int32_t W,
                                    int32_t PT, int32_t PL, int32_t z) {
#if defined(__ARM_FEATURE_DSP)
    const uint32_t fill = 0x01010101u * (uint8_t)z;
    const int32_t n = HP * WP;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) memcpy(dst + i, &fill, 4);
    for (; i < n; i++) dst[i] = (int8_t)z;
    for (int32_t h = 0; h < H; h++) {
        int8_t *d = dst + (h + PT) * WP + PL;
        const int8_t *s = x + h * W;
        int32_t j = 0;
        for (; j + 4 <= W; j += 4) {
            const int32_t v = tte_ld32(s + j);
            memcpy(d + j, &v, 4);
        }
        for (; j < W; j++) d[j] = s[j];
    }
#else
    memset(dst, (int)(int8_t)z, (size_t)(HP * WP));
    for (int32_t h = 0; h < H; h++) memcpy(dst + (h + PT) * WP + PL, x + h * W, (size_t)W);
#endif
}

#if defined(__ARM_FEATURE_DSP)
/* Four positions of a group of 4 channels (c .. c + 3, plane stride P, at x) as the halfword pairs SMLAD takes against
 * the pairs SXTB16 makes of the weight word w[c .. c + 3]: lo gets positions 0 and 1, hi positions 2 and 3, each as
 * (x[c], x[c + 2]) then (x[c + 1], x[c + 3]).  The staging of the pointwise convs (tte_conv_s8, tte_conv_pw_dw_s8). */
static inline void tte_stage_quad_s8(const int8_t *x, size_t P, int32_t *lo, int32_t *hi) {
    const int32_t u0 = tte_ld32(x), u1 = tte_ld32(x + P), u2 = tte_ld32(x + 2 * P), u3 = tte_ld32(x + 3 * P);
    const int32_t e0 = __sxtb16(u0), o0 = tte_sxtb16_ror8(u0), e2 = __sxtb16(u2), o2 = tte_sxtb16_ror8(u2);
    const int32_t e1 = __sxtb16(u1), o1 = tte_sxtb16_ror8(u1), e3 = __sxtb16(u3), o3 = tte_sxtb16_ror8(u3);
    lo[0] = tte_pkhbt16(e0, e2); /* position 0: channels (c, c + 2), then (c + 1, c + 3) */
    lo[1] = tte_pkhbt16(e1, e3);
    lo[2] = tte_pkhbt16(o0, o2); /* position 1 */
    lo[3] = tte_pkhbt16(o1, o3);
    hi[0] = tte_pkhtb16(e2, e0); /* position 2 */
    hi[1] = tte_pkhtb16(e3, e1);
    hi[2] = tte_pkhtb16(o2, o0); /* position 3 */
    hi[3] = tte_pkhtb16(o3, o1);
}
#endif

#define TTE_DW_RUN 32
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
/* The two 3x3 pair kernels below: their weights and registers, a tap row's word x0..x3 at ADDR spread to t = (x0,
 * x2) and u = (x1, x3), the loop's end (x advanced by STEP, the two sums stored), and their operands. */
#define TTE_DW3_SETUP                                                                                                 \
    const int32_t a02 = wp[0], b02 = wp[1], c02 = wp[2], m01 = wp[3], m2 = wp[4];                                     \
    const int32_t *end = acc + 2 * pairs;                                                                             \
    int32_t s0, s1, t, u
#define TTE_DW3_SPREAD(ADDR)                                                                                          \
    "ldr %[t], " ADDR "\n\t"                                                                                          \
    "sxtb16 %[u], %[t], ror #8\n\t"                                                                                   \
    "sxtb16 %[t], %[t]\n\t"
#define TTE_DW3_NEXT(STEP)                                                                                            \
    "adds %[x], %[x], #" STEP "\n\t"                                                                                  \
    "strd %[s0], %[s1], [%[acc]], #8\n\t"                                                                             \
    "cmp %[acc], %[end]\n\t"                                                                                          \
    "bne 1b"
#define TTE_DW3_OPERANDS                                                                                              \
    : [x] "+&r"(x), [acc] "+&r"(acc), [s0] "=&r"(s0), [s1] "=&r"(s1), [t] "=&r"(t), [u] "=&r"(u)                      \
    : [W] "r"(W), [end] "r"(end), [a02] "r"(a02), [b02] "r"(b02), [c02] "r"(c02), [m01] "r"(m01), [m2] "r"(m2)        \
    : "cc", "memory"
/* acc[q] = the 3x3 window sum at x + q (stride 1, W: the row stride), z_x's offset left out, for q < 2 * pairs:
 * per two outputs one word load per tap row gives x0..x3, SXTB16 spreads them to (x0, x2) and (x1, x3), and
 * (x0, x2) . (w0, w2) + x1 * w1 and (x1, x3) . (w0, w2) + x2 * w1 take two SMLADs and two SMLAxy (tte_dw_row_s8's
 * step).  wp: the pairs (w0, w2), (w3, w5), (w6, w8), then (w1, w4) and w7 (the middle taps of rows 0 and 1 as one
 * pair: SMLAxB and SMLAxT pick their halves), each w offset by z_w (tte_dw_prepare). */
TTE_ARM_NOINLINE void tte_dw3_pairs_s8(const int8_t *x, int32_t W, const int32_t *wp, int32_t pairs, int32_t *acc) {
    TTE_DW3_SETUP;
    __asm__ volatile("1:\n\t" TTE_DW3_SPREAD("[%[x]]") /* row 0 */
                     "smuad %[s0], %[t], %[a02]\n\t"
                     "smuad %[s1], %[u], %[a02]\n\t"
                     "smlabb %[s0], %[u], %[m01], %[s0]\n\t"
                     "smlatb %[s1], %[t], %[m01], %[s1]\n\t" TTE_DW3_SPREAD("[%[x], %[W]]") /* row 1 */
                     "smlad %[s0], %[t], %[b02], %[s0]\n\t"
                     "smlad %[s1], %[u], %[b02], %[s1]\n\t"
                     "smlabt %[s0], %[u], %[m01], %[s0]\n\t"
                     "smlatt %[s1], %[t], %[m01], %[s1]\n\t" TTE_DW3_SPREAD("[%[x], %[W], lsl #1]") /* row 2 */
                     "smlad %[s0], %[t], %[c02], %[s0]\n\t"
                     "smlad %[s1], %[u], %[c02], %[s1]\n\t"
                     "smlabb %[s0], %[u], %[m2], %[s0]\n\t"
                     "smlatb %[s1], %[t], %[m2], %[s1]\n\t" TTE_DW3_NEXT("2") TTE_DW3_OPERANDS);
}

/* tte_dw3_pairs_s8 at stride 2: outputs q, q + 1 read x0..x4 of each tap row: (x0, x2) . (w0, w2) + x1 * w1 and
 * x2 * w0 + x3 * w1 + x4 * w2, from one word load ((x0, x2), (x1, x3) by SXTB16) and one byte load (x4). */
TTE_ARM_NOINLINE void tte_dw3_pairs_s2_s8(const int8_t *x, int32_t W, const int32_t *wp, int32_t pairs, int32_t *acc) {
    TTE_DW3_SETUP;
    __asm__ volatile("1:\n\t" TTE_DW3_SPREAD("[%[x]]") /* row 0 */
                     "smuad %[s0], %[t], %[a02]\n\t"
                     "smultb %[s1], %[t], %[a02]\n\t" /* x2 * w0 */
                     "smlabb %[s0], %[u], %[m01], %[s0]\n\t"
                     "smlatb %[s1], %[u], %[m01], %[s1]\n\t" /* x3 * w1 */
                     "ldrsb %[u], [%[x], #4]\n\t"
                     "smlabt %[s1], %[u], %[a02], %[s1]\n\t" /* x4 * w2 */
                     TTE_DW3_SPREAD("[%[x], %[W]]") /* row 1 */
                     "smlad %[s0], %[t], %[b02], %[s0]\n\t"
                     "smlatb %[s1], %[t], %[b02], %[s1]\n\t"
                     "smlabt %[s0], %[u], %[m01], %[s0]\n\t"
                     "smlatt %[s1], %[u], %[m01], %[s1]\n\t"
                     "add %[u], %[x], %[W]\n\t"
                     "ldrsb %[u], [%[u], #4]\n\t"
                     "smlabt %[s1], %[u], %[b02], %[s1]\n\t" TTE_DW3_SPREAD("[%[x], %[W], lsl #1]") /* row 2 */
                     "smlad %[s0], %[t], %[c02], %[s0]\n\t"
                     "smlatb %[s1], %[t], %[c02], %[s1]\n\t"
                     "smlabb %[s0], %[u], %[m2], %[s0]\n\t"
                     "smlatb %[s1], %[u], %[m2], %[s1]\n\t"
                     "add %[u], %[x], %[W], lsl #1\n\t"
                     "ldrsb %[u], [%[u], #4]\n\t"
                     "smlabt %[s1], %[u], %[c02], %[s1]\n\t" TTE_DW3_NEXT("4") TTE_DW3_OPERANDS);
}
#undef TTE_DW3_SETUP
#undef TTE_DW3_SPREAD
#undef TTE_DW3_NEXT
#undef TTE_DW3_OPERANDS


/* tte_conv_plane_s8 for one input plane, a 3x3 kernel at stride 1 or 2 across the rows and every window inside the
 * plane (as after a small plane's padding copy): runs of TTE_DW_RUN window sums in acc, two at a time by
 * tte_dw3_pairs_s8 or tte_dw3_pairs_s2_s8 (an odd one by tte_window_interior_s8), each run then requantized
 * together.  z_x's offset is folded into the bias (r), so no instruction adds it per output: tte_rq_run adds the
 * bias saturated (QADD), and (sum - offset) + (bias + offset) saturates to what sum + bias does, the caller having
 * checked that bias + offset fits int32.  wp: the weight pairs of tte_dw3_pairs_s8. */
TTE_ARM_NOINLINE void tte_dw3_plane_s8(const int8_t *x, int32_t W, int32_t SH, int32_t SW, const int16_t *wk,
                                       const int32_t *wp, int32_t HO, int32_t WO, const tte_rq *r, int8_t *y,
                                       uint8_t *mask, size_t base, int32_t acc[TTE_DW_RUN]) {
    int32_t fill = 0;
    size_t start = 0;
    for (int32_t oh = 0; oh < HO; oh++) {
        const int8_t *row = x + oh * SH * W;
        for (int32_t ow = 0; ow < WO;) {
            const int32_t n = WO - ow < TTE_DW_RUN - fill ? WO - ow : TTE_DW_RUN - fill;
            if (n >= 2 && SW == 1) tte_dw3_pairs_s8(row + ow, W, wp, n / 2, acc + fill);
            if (n >= 2 && SW == 2) tte_dw3_pairs_s2_s8(row + 2 * ow, W, wp, n / 2, acc + fill);
            if (n & 1) acc[fill + n - 1] = tte_window_interior_s8(row + (ow + n - 1) * SW, W, wk, 3, 3, 0);
            ow += n;
            fill += n;
            if (fill == TTE_DW_RUN || (oh == HO - 1 && ow == WO)) {
                tte_rq_run(r, acc, fill, y + start, mask, base + start);
                start += (size_t)fill;
                fill = 0;
            }
        }
    }
}
#endif

/* One output plane of a conv whose output channel sees nc input planes (H x W each, consecutive at x; 1 for a
 * depthwise conv) through the nc * KH * KW taps at w (nc <= TTE_DW_FAST_TAPS / (KH * KW)):
 * y[oh * WO + ow] = the requantized window sum (r: the channel's output stage; mask bit base + oh * WO + ow, mask
 * may be NULL).  The window sums are gathered in runs of TTE_DW_RUN outputs in plane order (a run may span rows:
 * small planes requantize several rows at once), each run then requantized together (tte_rq_run).  Windows whose
 * columns lie inside the plane go through tte_dw_row_s8, with only the tap rows inside the plane in a row that
 * overlaps the top or bottom padding (padding reads as z_x: it adds nothing); the others take tte_window_dot_s8. */
#define TTE_PAD_BYTES 400 /* a single padded plane up to this size is copied with its padding (18 x 18 and less) */
TTE_ARM_NOINLINE void tte_conv_plane_s8(const int8_t *x, int32_t nc, int32_t H, int32_t W, const int8_t *w, int32_t KH,
                                        int32_t KW, const tte_conv_geometry *geo, int32_t HO, int32_t WO, int32_t zx,
                                        int32_t wz, const tte_rq *r, int8_t *y, uint8_t *mask, size_t base) {
    const int32_t SH = geo->stride_h, SW = geo->stride_w, kk = KH * KW;
    int32_t PT = geo->pad_top, PL = geo->pad_left;
    const tte_rq rq = *r; /* in registers: y may alias *r */
    int32_t wlo, whi, offset = 0;
    int16_t wk[TTE_DW_FAST_TAPS];
    int32_t acc[TTE_DW_RUN], part[TTE_DW_RUN];
    int8_t padded[TTE_PAD_BYTES];
    const int fast = tte_dw_prepare(w, nc * kk, wz, zx, wk, &offset);
    const int32_t HP = H + PT + geo->pad_bottom, WP = W + PL + geo->pad_right;
    const int padding = PT >= 0 && PL >= 0 && geo->pad_bottom >= 0 && geo->pad_right >= 0 && (HP > H || WP > W);
    if (fast && nc == 1 && padding && HP * WP <= TTE_PAD_BYTES && tte_zp_s8(zx)) {
        /* a small plane: copied inside its padding (which reads as z_x), every window is then an interior one (a
         * band of a patched conv may have a negative padding, rows of its buffer it does not read: not copied) */
        tte_pad_plane_s8(padded, HP, WP, x, H, W, PT, PL, zx);
        x = padded;
        H = HP;
        W = WP;
        PT = PL = 0;
    }
    /* 3x3 windows at stride 1 across the rows, with the Arm DSP extension: z_x's offset goes with the bias
     * (tte_dw3_plane_s8), every sum gathered below is then short of it (fold), and whole windows take
     * tte_dw3_pairs_s8; a plane whose windows all lie inside it is tte_dw3_plane_s8's */
    tte_rq rqf = rq;
    int32_t fold = 0;
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
    int32_t wp[5];
    const int pairs3 = fast && nc == 1 && KH == 3 && KW == 3 && (SW == 1 || SW == 2) &&
                       (int64_t)rq.bias + offset >= INT32_MIN && (int64_t)rq.bias + offset <= INT32_MAX;
    if (pairs3) {
        fold = offset;
        rqf.bias = rq.bias + offset;
        wp[0] = tte_pair16(wk[0], wk[2]);
        wp[1] = tte_pair16(wk[3], wk[5]);
        wp[2] = tte_pair16(wk[6], wk[8]);
        wp[3] = tte_pair16(wk[1], wk[4]);
        wp[4] = wk[7];
        if (PT == 0 && PL == 0 && (HO - 1) * SH + 3 <= H && (WO - 1) * SW + 3 <= W) {
            tte_dw3_plane_s8(x, W, SH, SW, wk, wp, HO, WO, &rqf, y, mask, base, acc);
            return;
        }
    }
#endif
    /* 5x5 and 7x7 rows (one channel): their weight pairs made once for every row of the plane */
    const int32_t (*wp57)[4] = NULL;
#if defined(__ARM_FEATURE_DSP)
    int32_t wp57s[7][4];
    if (fast && nc == 1 && ((KH == 5 && KW == 5) || (KH == 7 && KW == 7))) {
        tte_dw57_weights(wk, KH, KW, wp57s);
        wp57 = (const int32_t (*)[4])wp57s;
    }
#endif
    const size_t HW = (size_t)H * (size_t)W;
    tte_interior_range(SW, PL, KW, W, WO, &wlo, &whi);
    if (!fast) wlo = whi = 0; /* every window tap-checked */
    int32_t fill = 0;  /* window sums gathered in acc, for outputs start .. start + fill - 1 (plane order) */
    size_t start = 0;
    for (int32_t oh = 0; oh < HO; oh++) {
        const int32_t top = oh * SH - PT;
        int32_t i0, i1, rows_offset = 0;
        tte_tap_range(top, KH, H, &i0, &i1); /* the tap rows inside the plane */
        if (!fast) {
            /* wk unset: every window takes tte_window_dot_s8 */
        } else if (i0 == 0 && i1 == KH) {
            rows_offset = offset;
        } else {
            for (int32_t c = 0; c < nc; c++)
                for (int32_t t = c * kk + i0 * KW; t < c * kk + i1 * KW; t++) rows_offset -= zx * wk[t];
        }
        for (int32_t ow = 0; ow < WO;) {
            const int32_t end = WO - ow < TTE_DW_RUN - fill ? WO : ow + TTE_DW_RUN - fill; /* this run's part */
            while (ow < end) {
                if (ow >= wlo && ow < whi && i1 > i0) {
                    const int32_t n = (whi < end ? whi : end) - ow;
                    const int8_t *xw = x + (top + i0) * W + ow * SW - PL;
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
                    if (pairs3 && i1 - i0 == 3) { /* a whole 3x3 window: offset folded, rows_offset - fold = 0 */
                        if (n >= 2 && SW == 1) tte_dw3_pairs_s8(xw, W, wp, n / 2, acc + fill);
                        if (n >= 2 && SW == 2) tte_dw3_pairs_s2_s8(xw, W, wp, n / 2, acc + fill);
                        if (n & 1) acc[fill + n - 1] = tte_window_interior_s8(xw + (n - 1) * SW, W, wk, 3, 3, 0);
                    } else
#endif
                    tte_dw_row_s8(xw, W, SW, wk + i0 * KW, i1 - i0, KW, rows_offset - fold, n, acc + fill,
                                  wp57 ? (const int32_t (*)[4])(wp57 + i0) : NULL);
                    for (int32_t c = 1; c < nc; c++) {
                        tte_dw_row_s8(xw + (size_t)c * HW, W, SW, wk + c * kk + i0 * KW, i1 - i0, KW, 0, n, part,
                                      NULL);
                        for (int32_t i = 0; i < n; i++) acc[fill + i] += part[i];
                    }
                    ow += n;
                    fill += n;
                } else {
                    int32_t a = 0;
                    for (int32_t c = 0; c < nc; c++)
                        a += tte_window_dot_s8(x + (size_t)c * HW, H, W, top, ow * SW - PL, w + c * kk, KH, KW, zx, wz);
                    acc[fill++] = a - fold;
                    ow++;
                }
            }
            if (fill == TTE_DW_RUN || (oh == HO - 1 && ow == WO)) { /* a full run, or the plane's last outputs */
                tte_rq_run(&rqf, acc, fill, y + start, mask, base + start);
                start += (size_t)fill;
                fill = 0;
            }
        }
    }
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
        return o < w->channels ? w->trained + (size_t)o * (size_t)kk
                               : w->frozen + (size_t)(o - w->channels) * (size_t)kk;
    if (c < w->channels) return w->trained + ((size_t)o * (size_t)w->channels + (size_t)c) * (size_t)kk;
    return w->frozen + ((size_t)o * (size_t)(cg - w->channels) + (size_t)(c - w->channels)) * (size_t)kk;
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
