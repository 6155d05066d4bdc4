#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

#if defined(__ARM_FEATURE_DSP)
/* The Arm DSP path of the pointwise conv: a chunk of positions is first staged in `scratch` as the halfword pairs
 * SMLAD takes, so that each output row then reads its operands with plain word loads (the channels-major layout
 * keeps a position's channels a plane apart: pairing them costs as much as the multiply-accumulates, and it is done
 * once per chunk instead of once per output row).  Staged: g channel groups of 4 (c0 + 4 k, for the groups of a
 * segment) for 4 positions at a time; per group and position j, the words (x[c][j], x[c + 2][j]) and
 * (x[c + 1][j], x[c + 3][j]), the pairs SXTB16 makes of the weight word w[c .. c + 3]. */
static void tte_pw_stage(const int8_t *x, size_t P, int32_t groups, int32_t stride, int32_t quads, int32_t *t) {
    for (int32_t q = 0; q < quads; q++, x += 4) {
        int32_t *tq = t + (size_t)q * (size_t)stride * 8u;
        const int8_t *xc = x;
        for (int32_t k = 0; k < groups; k++, xc += 4 * P, tq += 8) tte_stage_quad_s8(xc, P, tq, tq + 4);
    }
}

/* acc[0 .. 3] += the 4 staged positions at t (groups channel groups) times the weight words at w: per group, 8 staged
 * words by two LDMs (positions 0, 1 then 2, 3; fixed registers, as LDM lists them in order), the weight word spread
 * by SXTB16, 8 SMLADs; two groups per loop step (an odd first group apart). */
#define TTE_PW_STAGED_GROUP                                                                                           \
    "ldr %[w13], [%[w]], #4\n\t"                                                                                      \
    "ldmia %[t]!, {%[r0], %[r1], %[r2], %[r3]}\n\t"                                                                   \
    "sxtb16 %[w02], %[w13]\n\t"                                                                                       \
    "sxtb16 %[w13], %[w13], ror #8\n\t"                                                                               \
    "smlad %[a0], %[r0], %[w02], %[a0]\n\t"                                                                           \
    "smlad %[a0], %[r1], %[w13], %[a0]\n\t"                                                                           \
    "smlad %[a1], %[r2], %[w02], %[a1]\n\t"                                                                           \
    "smlad %[a1], %[r3], %[w13], %[a1]\n\t"                                                                           \
    "ldmia %[t]!, {%[r0], %[r1], %[r2], %[r3]}\n\t"                                                                   \
    "smlad %[a2], %[r0], %[w02], %[a2]\n\t"                                                                           \
    "smlad %[a2], %[r1], %[w13], %[a2]\n\t"                                                                           \
    "smlad %[a3], %[r2], %[w02], %[a3]\n\t"                                                                           \
    "smlad %[a3], %[r3], %[w13], %[a3]\n\t"
#define TTE_PW_STAGED_OPERANDS                                                                                        \
    : [t] "+&r"(t), [w] "+&r"(w), [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [w02] "=&r"(w02),   \
      [w13] "=&r"(w13), [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [r3] "=&r"(r3)                               \
    : [end] "r"(end)                                                                                                  \
    : "cc", "memory"
TTE_ARM_NOINLINE void tte_pw_staged_dot(const int32_t *t, const int8_t *w, int32_t groups, int32_t *acc) {
    if (groups <= 0) return;
#if defined(TTE_ARM_ASM)
    register int32_t r0 __asm__("r2"), r1 __asm__("r3"), r2 __asm__("r4"), r3 __asm__("r5");
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], w13, w02;
    const int8_t *end = w + 4 * groups;
    if (groups & 1) __asm__(TTE_PW_STAGED_GROUP TTE_PW_STAGED_OPERANDS);
    if (groups > 1) __asm__("1:\n\t" TTE_PW_STAGED_GROUP TTE_PW_STAGED_GROUP "cmp %[w], %[end]\n\t"
                            "bne 1b" TTE_PW_STAGED_OPERANDS);
#undef TTE_PW_STAGED_GROUP
#undef TTE_PW_STAGED_OPERANDS
#else
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t k = 0; k < groups; k++, t += 8) {
        const int32_t ww = tte_ld32(w + 4 * k), w02 = __sxtb16(ww), w13 = tte_sxtb16_ror8(ww);
        a0 = __smlad(t[1], w13, __smlad(t[0], w02, a0));
        a1 = __smlad(t[3], w13, __smlad(t[2], w02, a1));
        a2 = __smlad(t[5], w13, __smlad(t[4], w02, a2));
        a3 = __smlad(t[7], w13, __smlad(t[6], w02, a3));
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The pointwise conv through staged chunks (see tte_pw_stage): 0 when `scratch` is too small for 4 positions. */
TTE_ARM_NOINLINE int tte_pw_staged_s8(const tte_quant_params *q, const int8_t *x, int32_t C, size_t SP, int32_t O,
                                      const tte_split_weights *weights, const int32_t *bias, const float *multipliers,
                                      int8_t *y, uint8_t *mask, size_t base, int8_t *scratch, int32_t scratch_bytes) {
    /* a split whose trained part is not whole groups of 4: each output row's weights are first joined (trained,
     * then frozen) into one row at the start of scratch, and the channels staged as one part */
    const int join = weights->frozen != NULL && (weights->channels & 3) != 0;
    const int32_t CT = weights->frozen && !join ? weights->channels : C, CF = C - CT, P = (int32_t)SP;
    const int32_t GT = CT / 4, GF = CF / 4, G = GT + GF; /* channel groups: trained ones, then frozen ones */
    const int32_t row_bytes = join ? (C + 3) & ~3 : 0;
    if (scratch == NULL || ((uintptr_t)scratch & 3u) != 0u || G == 0 || P < 4) return 0;
    int8_t *row = scratch;
    scratch += row_bytes;
    scratch_bytes -= row_bytes;
    int32_t R = scratch_bytes / (32 * G) * 4; /* positions per chunk: 8 G words per 4 positions */
    if (R > TTE_PW_RUN) R = TTE_PW_RUN;
    if (R < 4) return 0;
    if (R >= 8) R &= ~7; /* whole bytes of the mask per chunk */
    int32_t *t = (int32_t *)(void *)scratch;
    /* the output rows' weight sums, after the chunk where scratch has room for them: summed for the first chunk */
    int32_t *sums = (int64_t)scratch_bytes - 32 * G * (R / 4) >= 4 * (int64_t)O && R < P ? t + 8 * G * (R / 4) : NULL;
    for (int32_t p0 = 0; p0 < P; p0 += R) {
        const int32_t n = P - p0 < R ? P - p0 : R, quads = n / 4;
        tte_pw_stage(x + p0, SP, GT, G, quads, t);
        if (GF) tte_pw_stage(x + (size_t)CT * SP + (size_t)p0, SP, GF, G, quads, t + 8 * GT);
        for (int32_t o = 0; o < O; o++) {
            const int8_t *wt = row, *wf = row;
            if (join) { /* trained, then frozen, as one row of C */
                const int32_t ct = weights->channels, cf = C - ct;
                const int8_t *a = weights->trained + (size_t)o * (size_t)ct;
                const int8_t *b = weights->frozen + (size_t)o * (size_t)cf; /* b[c - ct]: channel c >= ct */
                int32_t c = 0;
                for (; c < ct; c++) row[c] = a[c];
                for (; c + 4 <= C; c += 4) {
                    const int32_t v = tte_ld32(b + (c - ct));
                    memcpy(row + c, &v, 4);
                }
                for (; c < C; c++) row[c] = b[c - ct];
            } else {
                wt = weights->trained + (size_t)o * (size_t)CT;
                wf = weights->frozen ? weights->frozen + (size_t)o * (size_t)CF : wt;
            }
            int32_t wsum;
            if (sums == NULL || p0 == 0) {
                wsum = tte_sum_s8(wt, CT) + (CF ? tte_sum_s8(wf, CF) : 0);
                if (sums != NULL) sums[o] = wsum;
            } else {
                wsum = sums[o];
            }
            tte_rq r = tte_rq_channel(q, bias, multipliers, o);
            int32_t acc[TTE_PW_RUN];
            /* at the bias where that is exact (tte_sums_start; symmetric weights) */
            const int32_t start = tte_sums_start(&r, -q->input_zero_point * wsum, C, q->input_zero_point, 0);
            for (int32_t i = 0; i < n; i += 4) { /* whole quads: acc holds TTE_PW_RUN, a multiple of 4 */
                acc[i] = acc[i + 1] = start;
                acc[i + 2] = acc[i + 3] = start;
            }
            for (int32_t j = 0; j < quads; j++) {
                const int32_t *tq = t + (size_t)j * (size_t)G * 8u;
                tte_pw_staged_dot(tq, wt, GT, acc + 4 * j);
                if (GF) tte_pw_staged_dot(tq + 8 * GT, wf, GF, acc + 4 * j);
            }
            /* the channels past the groups (C % 4 of each part), and the positions past the quads */
            for (int32_t c = 4 * GT; c < C; c++) {
                const int32_t wc = c < CT ? wt[c] : wf[c - CT];
                if (c >= CT && c < CT + 4 * GF) continue;
                const int8_t *xc = x + (size_t)c * SP + (size_t)p0;
                for (int32_t i = 0; i < 4 * quads; i++) acc[i] += (int32_t)xc[i] * wc;
            }
            for (int32_t i = 4 * quads; i < n; i++)
                for (int32_t c = 0; c < C; c++)
                    acc[i] += (int32_t)x[(size_t)c * SP + (size_t)(p0 + i)] * (c < CT ? wt[c] : wf[c - CT]);
            const size_t at = base + (size_t)o * SP + (size_t)p0;
            tte_rq_run(&r, acc, n, y + (size_t)o * SP + (size_t)p0, mask, at);
        }
    }
    return 1;
}
#endif

#if defined(__ARM_FEATURE_DSP)
/* Two rows of halfword pairs times two more, words 2 at a time (n even, >= 2): *a_ij += sum_t SMLAD(p_i[t], w_j[t]);
 * registers allocated by hand (the compiler's loop kept pointers on the stack). */
TTE_ARM_NOINLINE void tte_dot2x2_s16(const int32_t *p0, const int32_t *p1, const int32_t *w0, const int32_t *w1,
                                     int32_t n, int32_t *a00, int32_t *a01, int32_t *a10, int32_t *a11) {
#if defined(TTE_ARM_ASM)
    int32_t b00 = *a00, b01 = *a01, b10 = *a10, b11 = *a11, u, z, f, g;
    const int32_t *end = p0 + n;
    __asm__("1:\n\t"
            "ldr %[u], [%[p0]], #4\n\t"
            "ldr %[z], [%[p1]], #4\n\t"
            "ldr %[f], [%[w0]], #4\n\t"
            "ldr %[g], [%[w1]], #4\n\t"
            "smlad %[b00], %[u], %[f], %[b00]\n\t"
            "smlad %[b01], %[z], %[f], %[b01]\n\t"
            "smlad %[b10], %[u], %[g], %[b10]\n\t"
            "smlad %[b11], %[z], %[g], %[b11]\n\t"
            "ldr %[u], [%[p0]], #4\n\t"
            "ldr %[z], [%[p1]], #4\n\t"
            "ldr %[f], [%[w0]], #4\n\t"
            "ldr %[g], [%[w1]], #4\n\t"
            "smlad %[b00], %[u], %[f], %[b00]\n\t"
            "smlad %[b01], %[z], %[f], %[b01]\n\t"
            "smlad %[b10], %[u], %[g], %[b10]\n\t"
            "smlad %[b11], %[z], %[g], %[b11]\n\t"
            "cmp %[p0], %[end]\n\t"
            "bne 1b"
            : [p0] "+&r"(p0), [p1] "+&r"(p1), [w0] "+&r"(w0), [w1] "+&r"(w1), [b00] "+&r"(b00), [b01] "+&r"(b01),
              [b10] "+&r"(b10), [b11] "+&r"(b11), [u] "=&r"(u), [z] "=&r"(z), [f] "=&r"(f), [g] "=&r"(g)
            : [end] "r"(end)
            : "cc", "memory");
    *a00 = b00;
    *a01 = b01;
    *a10 = b10;
    *a11 = b11;
#else
    for (int32_t t = 0; t < n; t++) {
        *a00 = __smlad(p0[t], w0[t], *a00);
        *a01 = __smlad(p1[t], w0[t], *a01);
        *a10 = __smlad(p0[t], w1[t], *a10);
        *a11 = __smlad(p1[t], w1[t], *a11);
    }
#endif
}

/* A regular conv (groups 1) of at most TTE_DW_FAST_TAPS taps per output channel (a stem) on the Arm DSP extension, as
 * a matrix product: each output channel's taps w - z_w as halfword pairs, then chunk by chunk of output positions
 * their windows x - z_x (padding: 0) as halfword pairs too (both in `scratch`), and two channels x two positions per
 * SMLAD step.  0 when the scratch is too small (or z_x or a z_w is outside int8). */
TTE_ARM_NOINLINE int tte_conv_gathered_s8(const tte_conv_geometry *geo, const tte_quant_params *q,
                                          const tte_dims *in_dims, const int8_t *input, const tte_dims *w_dims,
                                          const tte_split_weights *weights, const int32_t *wzp, const int32_t *bias,
                                          const float *multipliers, const tte_dims *out_dims, int8_t *output,
                                          uint8_t *mask, int8_t *scratch, int32_t scratch_bytes) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w, O = w_dims->n, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = out_dims->h, WO = out_dims->w, KK = KH * KW, T = C * KK, zx = q->input_zero_point;
    const int32_t T2 = (T + 3) / 4 * 2; /* words per window: an even number of halfword pairs (zeros past T) */
    if (geo->groups != 1 || T > TTE_DW_FAST_TAPS || scratch == NULL || ((uintptr_t)scratch & 3u) != 0u ||
        !tte_zp_s8(zx))
        return 0;
    for (int32_t o = 0; wzp && o < O; o++)
        if (!tte_zp_s8(wzp[o])) return 0;
    int32_t R = (scratch_bytes / 4 - O * T2) / T2; /* positions per chunk */
    if (R > TTE_DW_RUN) R = TTE_DW_RUN;
    if (R >= 8) R &= ~7; /* whole bytes of the mask per chunk */
    if (R < 4) return 0;
    int32_t *wp = (int32_t *)(void *)scratch, *xp = wp + O * T2;
    int16_t v[TTE_DW_FAST_TAPS + 4];
    int32_t off[TTE_DW_FAST_TAPS]; /* tap t of a window inside the plane: its input at x + off[t] */
    for (int32_t o = 0; o < O; o++) {
        const int32_t wz = wzp ? wzp[o] : 0;
        for (int32_t c = 0; c < C; c++) {
            const int8_t *row = tte_weight_row(weights, 0, o, c, C, KK);
            for (int32_t t = 0; t < KK; t++) v[c * KK + t] = (int16_t)(row[t] - wz);
        }
        for (int32_t t = T; t < 2 * T2; t++) v[t] = 0;
        memcpy(wp + o * T2, v, (size_t)T2 * 4u);
    }
    for (int32_t c = 0; c < C; c++)
        for (int32_t i = 0; i < KH; i++)
            for (int32_t j = 0; j < KW; j++) off[c * KK + i * KW + j] = (c * H + i) * W + j;
    for (int32_t k = 0; k < R; k++) /* the halfwords past T of every window: zeros, written once */
        for (int32_t t = T; t < 2 * T2; t++) ((int16_t *)(void *)(xp + k * T2))[t] = 0;
    const int32_t HWO = HO * WO;
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * (size_t)H * (size_t)W;
        int32_t oh = 0, ow = 0; /* the position s0 + k, stepped along */
        for (int32_t s0 = 0; s0 < HWO; s0 += R) {
            const int32_t r = HWO - s0 < R ? HWO - s0 : R;
            for (int32_t k = 0; k < r; k++) { /* the windows of this chunk's positions, as int16 x - z_x */
                int16_t *vk = (int16_t *)(void *)(xp + k * T2);
                const int32_t top = oh * geo->stride_h - geo->pad_top, left = ow * geo->stride_w - geo->pad_left;
                if (top >= 0 && top + KH <= H && left >= 0 && left + KW <= W) { /* inside: no tap checks */
                    const int8_t *xw = x + (size_t)top * (size_t)W + (size_t)left;
                    for (int32_t t = 0; t < T; t++) vk[t] = (int16_t)(xw[off[t]] - zx);
                } else {
                    for (int32_t c = 0; c < C; c++)
                        for (int32_t i = 0; i < KH; i++)
                            for (int32_t j = 0; j < KW; j++) {
                                const int32_t h = top + i, w = left + j;
                                vk[c * KK + i * KW + j] =
                                    (int16_t)(h >= 0 && h < H && w >= 0 && w < W
                                                  ? x[((size_t)c * (size_t)H + (size_t)h) * (size_t)W + (size_t)w] - zx
                                                  : 0);
                            }
                }
                if (++ow == WO) {
                    ow = 0;
                    oh++;
                }
            }
            for (int32_t o = 0; o < O; o += 2) {
                const int32_t o1 = o + 1 < O ? o + 1 : o; /* an odd last channel pairs with itself */
                const int32_t *w0 = wp + o * T2, *w1 = wp + o1 * T2;
                int32_t acc0[TTE_DW_RUN], acc1[TTE_DW_RUN];
                for (int32_t k = 0; k < r; k += 2) {
                    const int32_t k1 = k + 1 < r ? k + 1 : k; /* an odd last position pairs with itself */
                    const int32_t *p0 = xp + k * T2, *p1 = xp + k1 * T2;
                    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
                    tte_dot2x2_s16(p0, p1, w0, w1, T2, &a00, &a01, &a10, &a11);
                    acc0[k] = a00;
                    acc1[k] = a10;
                    if (k1 != k) {
                        acc0[k1] = a01;
                        acc1[k1] = a11;
                    }
                }
                for (int32_t b = 0; b < (o1 != o ? 2 : 1); b++) {
                    const tte_rq rq = tte_rq_channel(q, bias, multipliers, o + b);
                    const size_t at = ((size_t)n * (size_t)O + (size_t)(o + b)) * (size_t)HWO + (size_t)s0;
                    tte_rq_run(&rq, b ? acc1 : acc0, r, output + at, mask, at);
                }
            }
        }
    }
    return 1;
}
#endif

/* 1x1, stride 1, unpadded, symmetric weights: acc = sum_c x * w - z_x * sum_c w, the same integer as
 * sum_c (x - z_x) * w with one multiply-accumulate per term.  With the Arm DSP extension and scratch for at least 4
 * positions, staged chunks (tte_pw_staged_s8); else two output channels and two positions at a time
 * (tte_pw_acc2_s8: SMLAD with the Arm DSP extension), or two output channels and a run of positions (tte_pw_run,
 * the portable path: the compiler's vectors); a weight row is its trained channels then its frozen ones. */
static tte_status tte_conv_pointwise_s8(const tte_quant_params *q, const tte_dims *in_dims, const int8_t *input,
                                        int32_t O, const tte_split_weights *weights, const int32_t *bias,
                                        const float *multipliers, int8_t *output, uint8_t *mask, int8_t *scratch,
                                        int32_t scratch_bytes) {
    const int32_t C = in_dims->c, P = in_dims->h * in_dims->w;
    const int32_t CT = weights->frozen ? weights->channels : C, CF = C - CT;
    const size_t SP = (size_t)P;
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * SP;
#if defined(__ARM_FEATURE_DSP)
        const size_t at = (size_t)n * (size_t)O * SP;
        if (tte_pw_staged_s8(q, x, C, SP, O, weights, bias, multipliers, output + at, mask, at, scratch,
                             scratch_bytes))
            continue;
#else
        (void)scratch;
        (void)scratch_bytes;
#endif
        for (int32_t o = 0; o < O; o += 2) {
            const int32_t o1 = o + 1 < O ? o + 1 : o; /* an odd last row pairs with itself */
            const int8_t *t0 = weights->trained + (size_t)o * (size_t)CT;
            const int8_t *t1 = weights->trained + (size_t)o1 * (size_t)CT;
            const int8_t *f0 = weights->frozen ? weights->frozen + (size_t)o * (size_t)CF : t0;
            const int8_t *f1 = weights->frozen ? weights->frozen + (size_t)o1 * (size_t)CF : t1;
            int32_t wsum0 = 0, wsum1 = 0;
            for (int32_t c = 0; c < CT; c++) {
                wsum0 += t0[c];
                wsum1 += t1[c];
            }
            for (int32_t c = 0; c < CF; c++) {
                wsum0 += f0[c];
                wsum1 += f1[c];
            }
            const int32_t off0 = -q->input_zero_point * wsum0, off1 = -q->input_zero_point * wsum1;
            const tte_rq r0 = tte_rq_channel(q, bias, multipliers, o), r1 = tte_rq_channel(q, bias, multipliers, o1);
            int8_t *y0 = output + ((size_t)n * (size_t)O + (size_t)o) * SP;
            int8_t *y1 = output + ((size_t)n * (size_t)O + (size_t)o1) * SP;
            const size_t i0 = (size_t)(y0 - output), i1 = (size_t)(y1 - output);
            for (int32_t p = 0; p < P; p += TTE_PW_RUN) { /* a run of positions at a time, then its output stage */
                const int32_t run = P - p < TTE_PW_RUN ? P - p : TTE_PW_RUN;
                int32_t acc0[TTE_PW_RUN], acc1[TTE_PW_RUN];
                for (int32_t i = 0; i < run; i++) {
                    acc0[i] = off0;
                    acc1[i] = off1;
                }
#if defined(__ARM_FEATURE_DSP)
                tte_pw_acc2_s8(x + p, SP, t0, t1, CT, run, acc0, acc1); /* SMLAD, two rows x two positions */
                if (CF) tte_pw_acc2_s8(x + (size_t)CT * SP + (size_t)p, SP, f0, f1, CF, run, acc0, acc1);
#else
                tte_pw_run(x + p, SP, t0, o1 != o ? t1 : NULL, CT, 0, 0, acc0, acc1, run); /* the compiler's vectors */
                if (CF)
                    tte_pw_run(x + (size_t)CT * SP + (size_t)p, SP, f0, o1 != o ? f1 : NULL, CF, 0, 0, acc0, acc1, run);
#endif
                tte_rq_run(&r0, acc0, run, y0 + p, mask, i0 + (size_t)p);
                if (o1 != o) tte_rq_run(&r1, acc1, run, y1 + p, mask, i1 + (size_t)p);
            }
        }
    }
    return TTE_OK;
}

/* Direct convolution, any groups.  acc = sum (x - z_x) * (w - z_w[o]) over the window (padding reads
 * z_x, i.e. contributes 0), then bias, multiplier, rounding and clamp per tte_internal.h
 * (tte_rq_apply: float32 multipliers, or TFLite's Q31 ones in q). */
tte_status tte_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                       const int8_t *input, const tte_dims *w_dims, const tte_split_weights *weights,
                       const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                       const tte_dims *out_dims, int8_t *output, uint8_t *mask, int8_t *scratch,
                       int32_t scratch_bytes) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = out_dims->h, WO = out_dims->w;
    if (geo->groups < 1 || C != CG * geo->groups || O % geo->groups || out_dims->c != O) return TTE_ERROR_ARGUMENT;
    const int32_t OG = O / geo->groups;
    if (KH == 1 && KW == 1 && geo->groups == 1 && geo->stride_h == 1 && geo->stride_w == 1 && !geo->pad_top &&
        !geo->pad_left && !geo->pad_bottom && !geo->pad_right && weight_zero_points == NULL)
        return tte_conv_pointwise_s8(q, in_dims, input, O, weights, bias, multipliers, output, mask, scratch,
                                     scratch_bytes);
#if defined(__ARM_FEATURE_DSP)
    if (tte_conv_gathered_s8(geo, q, in_dims, input, w_dims, weights, weight_zero_points, bias, multipliers, out_dims,
                             output, mask, scratch, scratch_bytes))
        return TTE_OK;
#endif
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * (size_t)H * (size_t)W;
        for (int32_t o = 0; o < O; o++) {
            const int32_t c0 = (o / OG) * CG;
            const int32_t wz = weight_zero_points ? weight_zero_points[o] : 0;
            const tte_rq r = tte_rq_channel(q, bias, multipliers, o);
            if (CG * KH * KW <= TTE_DW_FAST_TAPS) { /* the stem, small convs: its taps gathered, interior runs */
                int8_t wg[TTE_DW_FAST_TAPS];
                for (int32_t c = 0; c < CG; c++)
                    memcpy(wg + c * KH * KW, tte_weight_row(weights, 0, o, c, CG, KH * KW), (size_t)(KH * KW));
                tte_conv_plane_s8(x + (size_t)c0 * (size_t)H * (size_t)W, CG, H, W, wg, KH, KW, geo, HO, WO,
                                  q->input_zero_point, wz, &r,
                                  output + ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO, mask,
                                  ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO);
                continue;
            }
            for (int32_t oh = 0; oh < HO; oh++) {
                for (int32_t ow = 0; ow < WO; ow++) {
                    int32_t acc = 0;
                    for (int32_t c = 0; c < CG; c++)
                        acc += tte_window_dot_s8(x + (size_t)(c0 + c) * (size_t)H * (size_t)W, H, W,
                                                 oh * geo->stride_h - geo->pad_top, ow * geo->stride_w - geo->pad_left,
                                                 tte_weight_row(weights, 0, o, c, CG, KH * KW), KH, KW,
                                                 q->input_zero_point, wz);
                    const size_t idx = (((size_t)n * (size_t)O + (size_t)o) * (size_t)HO + (size_t)oh) * (size_t)WO +
                                       (size_t)ow;
                    output[idx] = tte_rq_apply(&r, acc, mask, idx);
                }
            }
        }
    }
    return TTE_OK;
}
