#include "tte_internal.h"
#include "tte_runtime.h"

/* Positions per run of the 1x1 conv: on Arm longer runs than the host's vector loops take (TTE_PW_RUN), so that a
 * run's calls cost less per position (tte_pw_acc_s8 takes any count; its group loop runs them 4 at a time). */
#if defined(__ARM_FEATURE_DSP)
#define TTE_PWDW_RUN 64
#else
#define TTE_PWDW_RUN TTE_PW_RUN
#endif

int32_t tte_conv_pw_dw_s8_get_buffer_size(const tte_dims *in_dims) { return in_dims->h * in_dims->w; }

/* The padding of a plane of HP rows of WP bytes whose rows PT .. PT + H - 1, columns PL .. PL + W - 1 the 1x1 conv
 * fills: z (the depthwise conv's z_x) everywhere else, so that every depthwise window lies inside the plane. */
static void tte_pwdw_border(int8_t *plane, int32_t HP, int32_t WP, int32_t PT, int32_t H, int32_t PL, int32_t W,
                            int8_t z) {
    for (int32_t h = 0; h < HP; h++) {
        int8_t *row = plane + (size_t)h * (size_t)WP;
        if (h < PT || h >= PT + H) {
            for (int32_t w = 0; w < WP; w++) row[w] = z;
        } else {
            for (int32_t w = 0; w < PL; w++) row[w] = z;
            for (int32_t w = PL + W; w < WP; w++) row[w] = z;
        }
    }
}

#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
/* The staged path (Arm DSP extension, symmetric 1x1 weights, C a multiple of 4, even W, an int8 zero point between
 * the convs, and scratch for a band of rows): a band of the input's rows is staged once in scratch as the halfword
 * pairs SMLAD takes, then every expanded channel reads it with word loads (the channels-major layout keeps a
 * position's channels a plane apart: pairing them per expanded channel cost more than its multiply-accumulates).
 * Staged per pair of channel groups (groups 2j, 2j + 1 of 4 channels) and pair of positions (p, p + 1), 8 words: per
 * group (x[c][p], x[c + 2][p]), (x[c + 1][p], x[c + 3][p]), then the same for p + 1, the pairs SXTB16 makes of the
 * weight word w[c .. c + 3]; a group pair's position pairs follow one another (pair_words apart from the next group
 * pair's).  The positions past the last quad (and the second of an odd last pair) are staged one by one (zero:
 * none).  With an odd number of groups the last pair's second group is not staged: its weight pairs are 0
 * (tte_pwdw_staged_s8). */
static void tte_pwdw_stage(const int8_t *x, size_t P, int32_t G, int32_t n, int32_t pair_words, int32_t *t) {
    const int32_t quads = n / 4, pairs = (n + 1) / 2;
    for (int32_t k = 0; k < G; k++) {
        int32_t *tk = t + (size_t)(k >> 1) * (size_t)pair_words + 4 * (k & 1);
        const int8_t *xc = x + (size_t)(4 * k) * P;
        for (int32_t q = 0; q < quads; q++, tk += 16) tte_stage_quad_s8(xc + 4 * q, P, tk, tk + 8); /* two pairs */
        for (int32_t i = 4 * quads; i < 2 * pairs; i++) {
            int32_t *ti = t + (size_t)(k >> 1) * (size_t)pair_words + 4 * (k & 1) + 8 * (i / 2) + 2 * (i & 1);
            ti[0] = i < n ? tte_pair16(xc[i], xc[2 * P + (size_t)i]) : 0;
            ti[1] = i < n ? tte_pair16(xc[P + (size_t)i], xc[3 * P + (size_t)i]) : 0;
        }
    }
}

/* acc[2 i], acc[2 i + 1] += position pair i of one staged group pair (8 words at t + 8 i) times the weight pairs
 * wp[0 .. 3] (groups 2j: wp[0], wp[1]; 2j + 1: wp[2], wp[3]), i < pairs (>= 1): two LDMs, 8 SMLADs, the sums loaded
 * and stored as pairs (LDM lists its registers in order: fixed ones). */
TTE_ARM_NOINLINE void tte_pwdw_pairs(const int32_t *t, const int32_t *wp, int32_t pairs, int32_t *acc) {
    register int32_t r0 __asm__("r2"), r1 __asm__("r3"), r2 __asm__("r4"), r3 __asm__("r5");
    const int32_t wa0 = wp[0], wa1 = wp[1], wb0 = wp[2], wb1 = wp[3];
    const int32_t *end = acc + 2 * pairs;
    int32_t a0, a1;
    __asm__ volatile("1:\n\t"
                     "ldrd %[a0], %[a1], [%[acc]]\n\t"
                     "ldmia %[t]!, {%[r0], %[r1], %[r2], %[r3]}\n\t"
                     "smlad %[a0], %[r0], %[wa0], %[a0]\n\t"
                     "smlad %[a0], %[r1], %[wa1], %[a0]\n\t"
                     "smlad %[a1], %[r2], %[wa0], %[a1]\n\t"
                     "smlad %[a1], %[r3], %[wa1], %[a1]\n\t"
                     "ldmia %[t]!, {%[r0], %[r1], %[r2], %[r3]}\n\t"
                     "smlad %[a0], %[r0], %[wb0], %[a0]\n\t"
                     "smlad %[a0], %[r1], %[wb1], %[a0]\n\t"
                     "smlad %[a1], %[r2], %[wb0], %[a1]\n\t"
                     "smlad %[a1], %[r3], %[wb1], %[a1]\n\t"
                     "strd %[a0], %[a1], [%[acc]], #8\n\t"
                     "cmp %[acc], %[end]\n\t"
                     "bne 1b"
                     : [t] "+&r"(t), [acc] "+&r"(acc), [a0] "=&r"(a0), [a1] "=&r"(a1), [r0] "=&r"(r0),
                       [r1] "=&r"(r1), [r2] "=&r"(r2), [r3] "=&r"(r3)
                     : [wa0] "r"(wa0), [wa1] "r"(wa1), [wb0] "r"(wb0), [wb1] "r"(wb1), [end] "r"(end)
                     : "cc", "memory");
}

/* Bytes of scratch the staged path needs for bands of `rows` input rows: the band's plane inside its padding
 * (`pads` rows at most), word-aligned, then its staged rows. */
static int64_t tte_pwdw_band_bytes(int32_t rows, int32_t W, int32_t WP, int32_t pads, int32_t G) {
    const int64_t plane = ((int64_t)(rows + pads) * WP + 3) & ~(int64_t)3;
    return plane + (int64_t)((G + 1) / 2) * (((int64_t)rows * W + 1) / 2) * 32;
}

/* The fused conv through staged bands of output rows (see tte_pwdw_stage): band by band, the band's input rows are
 * staged, then for each expanded channel its 1x1 conv fills the band's plane inside its padding (the depthwise conv's
 * z_x, filled once per band: every window then lies inside the plane) and the depthwise conv computes the band's
 * output rows from it.  A band's rows overlap the next band's by KH - SH (recomputed).  0 when it does not apply
 * (nothing written). */
static int tte_pwdw_staged_s8(const tte_quant_params *q1, const int8_t *w1, const int32_t *w1_zero_points,
                              const int32_t *b1, const float *m1, const tte_conv_geometry *geo2,
                              const tte_quant_params *q2, int32_t KH, int32_t KW, const int8_t *w2,
                              const int32_t *w2_zero_points, const int32_t *b2, const float *m2, int32_t C, int32_t H,
                              int32_t W, const int8_t *x, int32_t M, int32_t HO, int32_t WO, int8_t *y, int8_t *scratch,
                              int32_t scratch_bytes) {
    const int32_t SH = geo2->stride_h, PT = geo2->pad_top, PL = geo2->pad_left, PB = geo2->pad_bottom;
    const int32_t PR = geo2->pad_right, WP = W + PL + PR, G = C / 4, GP = (G + 1) / 2;
    if ((C & 3) != 0 || (W & 1) != 0 || scratch == NULL || ((uintptr_t)scratch & 3u) != 0u || HO < 1 || WO < 1 ||
        PT < 0 || PL < 0 || PB < 0 || PR < 0 || PT >= KH || PB >= KH || !tte_zp_s8(q2->input_zero_point))
        return 0;
    if (w1_zero_points != NULL)
        for (int32_t m = 0; m < M; m++)
            if (w1_zero_points[m] != 0) return 0;
    /* the most output rows per band that fit (a band of R output rows reads at most (R - 1) SH + KH input rows) */
    int32_t R = HO;
    while (R > 0 && tte_pwdw_band_bytes((R - 1) * SH + KH < H ? (R - 1) * SH + KH : H, W, WP, PT + PB, G) >
                        (int64_t)scratch_bytes)
        R--;
    /* bands short enough that their overlap (KH - SH rows, recomputed) costs more than staging saves: the per-channel
     * path instead (a quarter of a band's rows at most) */
    if (R < 1 || (R < HO && R * SH < 4 * (KH - SH))) return 0;
    const int8_t zm = (int8_t)q2->input_zero_point;
    for (int32_t o0 = 0; o0 < HO; o0 += R) {
        const int32_t o1 = HO - o0 < R ? HO : o0 + R;
        const int32_t top = o0 * SH - PT, bottom = (o1 - 1) * SH - PT + KH; /* the band's window rows */
        const int32_t i0 = top > 0 ? top : 0, i1 = bottom < H ? bottom : H, rows = i1 - i0, n = rows * W;
        const int32_t pt = i0 - top, pb = bottom - i1; /* its padding rows above and below */
        const int32_t BH = pt + rows + pb;
        const int64_t plane = ((int64_t)BH * WP + 3) & ~(int64_t)3;
        const int32_t pair_words = 8 * ((n + 1) / 2);
        int32_t *t = (int32_t *)(void *)(scratch + plane);
        tte_pwdw_stage(x + (size_t)i0 * (size_t)W, (size_t)H * (size_t)W, G, n, pair_words, t);
        tte_conv_geometry band = *geo2;
        band.pad_top = band.pad_left = band.pad_bottom = band.pad_right = 0;
        tte_pwdw_border(scratch, BH, WP, pt, rows, PL, W, zm);
        for (int32_t m = 0; m < M; m++) {
            const int8_t *wm = w1 + (size_t)m * (size_t)C;
            tte_rq r1 = tte_rq_channel(q1, b1, m1, m);
            const tte_rq r2 = tte_rq_channel(q2, b2, m2, m);
            const int32_t start = tte_sums_start(&r1, -q1->input_zero_point * tte_sum_s8(wm, C), C,
                                                 q1->input_zero_point, 0);
            int32_t acc[TTE_PWDW_RUN];
            /* runs of positions within a row (the band's plane may be wider), each then requantized into it */
            const int32_t run = W < TTE_PWDW_RUN ? W : TTE_PWDW_RUN;
            for (int32_t p0 = 0, len; p0 < n; p0 += len) {
                len = W - p0 % W < run ? W - p0 % W : run;
                const int32_t h = p0 / W, pairs = (len + 1) / 2;
                for (int32_t i = 0; i < 2 * pairs; i += 4) { /* whole quads: acc holds TTE_PWDW_RUN, a multiple of 4 */
                    acc[i] = acc[i + 1] = start;
                    acc[i + 2] = acc[i + 3] = start;
                }
                for (int32_t j = 0; j < GP; j++) {
                    int32_t wp[4] = {0, 0, 0, 0};
                    const int32_t wa = tte_ld32(wm + 8 * j);
                    wp[0] = __sxtb16(wa);
                    wp[1] = tte_sxtb16_ror8(wa);
                    if (2 * j + 1 < G) {
                        const int32_t wb = tte_ld32(wm + 8 * j + 4);
                        wp[2] = __sxtb16(wb);
                        wp[3] = tte_sxtb16_ror8(wb);
                    }
                    tte_pwdw_pairs(t + (size_t)j * (size_t)pair_words + 4 * p0, wp, pairs, acc);
                }
                tte_rq_run(&r1, acc, len, scratch + (size_t)(pt + h) * (size_t)WP + (size_t)(PL + p0 % W), NULL, 0);
            }
            const int32_t z2 = w2_zero_points ? w2_zero_points[m] : 0;
            tte_conv_plane_s8(scratch, 1, BH, WP, w2 + (size_t)m * (size_t)KH * (size_t)KW, KH, KW, &band, o1 - o0,
                              WO, q2->input_zero_point, z2, &r2, y + ((size_t)m * (size_t)HO + (size_t)o0) * (size_t)WO,
                              NULL, 0);
        }
    }
    return 1;
}
#endif

/* A 1x1 conv (w1: [M, C]) feeding a depthwise conv (w2: [M, 1, KH, KW]): for each of the M expanded
 * channels, its plane is computed into `scratch` (requantized with q1, as int8) and consumed at once by
 * the depthwise conv; the [M, H, W] expansion never exists.  Same integers as the two convs (each stage's
 * arithmetic: float32 multipliers m1 / m2, or TFLite's Q31 ones in q1 / q2). */
tte_status tte_conv_pw_dw_s8(const tte_quant_params *q1, const int8_t *w1, const int32_t *w1_zero_points,
                             const int32_t *b1, const float *m1, const tte_conv_geometry *geo2,
                             const tte_quant_params *q2, const tte_dims *w2_dims, const int8_t *w2,
                             const int32_t *w2_zero_points, const int32_t *b2, const float *m2,
                             const tte_dims *in_dims, const int8_t *input, const tte_dims *out_dims,
                             int8_t *output, int8_t *scratch, int32_t scratch_bytes) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w, HW = H * W;
    const int32_t M = w2_dims->n, KH = w2_dims->h, KW = w2_dims->w, HO = out_dims->h, WO = out_dims->w;
    if (w2_dims->c != 1 || out_dims->c != M || geo2->groups != M) return TTE_ERROR_ARGUMENT;
#if defined(__ARM_FEATURE_DSP) && defined(TTE_ARM_ASM)
    /* staged bands where scratch has room for them (every sample alike) */
    for (int32_t n = 0; n < in_dims->n; n++) {
        const size_t at = (size_t)n * (size_t)C * (size_t)HW, to = (size_t)n * (size_t)M * (size_t)HO * (size_t)WO;
        if (!tte_pwdw_staged_s8(q1, w1, w1_zero_points, b1, m1, geo2, q2, KH, KW, w2, w2_zero_points, b2, m2, C, H, W,
                                input + at, M, HO, WO, output + to, scratch, scratch_bytes))
            break;
        if (n == in_dims->n - 1) return TTE_OK;
    }
#endif
    /* With the Arm DSP extension and room in scratch, a plane too large to be copied inside its padding on the stack
     * (tte_conv_plane_s8) is written there by the 1x1 conv row by row, its padding (the depthwise conv's z_x)
     * filled once: every depthwise window then lies inside it (no tap checks, no border windows). */
    tte_conv_geometry inner = *geo2;
    const int32_t PT = geo2->pad_top, PL = geo2->pad_left, PB = geo2->pad_bottom, PR = geo2->pad_right;
    const int32_t HP = H + PT + PB, WP = W + PL + PR;
#if defined(__ARM_FEATURE_DSP)
    const int padded = PT >= 0 && PL >= 0 && PB >= 0 && PR >= 0 && W >= 16 && HP * WP > TTE_PAD_BYTES &&
                       (int64_t)HP * WP <= (int64_t)scratch_bytes && tte_zp_s8(q2->input_zero_point);
#else
    const int padded = 0;
    (void)scratch_bytes;
#endif
    if (padded) {
        tte_pwdw_border(scratch, HP, WP, PT, H, PL, W, (int8_t)q2->input_zero_point);
        inner.pad_top = inner.pad_left = inner.pad_bottom = inner.pad_right = 0;
    }
    for (int32_t n = 0; n < in_dims->n; n++) {
        const int8_t *x = input + (size_t)n * (size_t)C * (size_t)HW;
        for (int32_t m = 0; m < M; m++) {
            const int8_t *wm = w1 + (size_t)m * (size_t)C;
            const int32_t z1 = w1_zero_points ? w1_zero_points[m] : 0;
            /* sum_c (x - z_x) * (w - z_w) = sum_c x * (w - z_w) - z_x * sum_c (w - z_w): one MAC per term,
             * two positions at a time (tte_pw_dot_1x2: SMLAD with the Arm DSP extension), else a run of positions
             * at a time (tte_pw_run: the compiler's vectors) */
            int32_t wsum = 0;
            for (int32_t c = 0; c < C; c++) wsum += (int32_t)wm[c] - z1;
            int32_t offset = -q1->input_zero_point * wsum;
            tte_rq r1 = tte_rq_channel(q1, b1, m1, m);
            const tte_rq r2 = tte_rq_channel(q2, b2, m2, m);
#if defined(__ARM_FEATURE_DSP)
            offset = tte_sums_start(&r1, offset, C, q1->input_zero_point, z1); /* at the bias where that is exact */
#endif
            int32_t acc[TTE_PWDW_RUN];
            /* runs of positions: of the plane, or of a row when the plane goes inside its padding */
            const int32_t span = padded ? W : HW;
            for (int32_t r0 = 0; r0 < HW; r0 += span) {
                int8_t *dst = padded ? scratch + (size_t)(r0 / W + PT) * (size_t)WP + (size_t)PL : scratch + r0;
                for (int32_t p0 = 0; p0 < span; p0 += TTE_PWDW_RUN) {
                    const int32_t n = span - p0 < TTE_PWDW_RUN ? span - p0 : TTE_PWDW_RUN;
#if defined(__ARM_FEATURE_DSP)
                    tte_pw_acc_s8(x + r0 + p0, (size_t)HW, wm, C, z1, offset, n, acc);
#else
                    for (int32_t i = 0; i < n; i++) acc[i] = offset;
                    tte_pw_run(x + r0 + p0, (size_t)HW, wm, NULL, C, z1, 0, acc, NULL, n);
#endif
                    tte_rq_run(&r1, acc, n, dst + p0, NULL, 0);
                }
            }
            const int8_t *wc = w2 + (size_t)m * (size_t)KH * (size_t)KW;
            const int32_t z2 = w2_zero_points ? w2_zero_points[m] : 0;
            int8_t *y = output + ((size_t)n * (size_t)M + (size_t)m) * (size_t)HO * (size_t)WO;
            tte_conv_plane_s8(scratch, 1, padded ? HP : H, padded ? WP : W, wc, KH, KW, &inner, HO, WO,
                              q2->input_zero_point, z2, &r2, y, NULL, 0);
        }
    }
    return TTE_OK;
}
