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
        const int8_t zm = (int8_t)q2->input_zero_point;
        for (int32_t h = 0; h < HP; h++) {
            int8_t *row = scratch + (size_t)h * (size_t)WP;
            if (h < PT || h >= PT + H) {
                for (int32_t w = 0; w < WP; w++) row[w] = zm;
            } else {
                for (int32_t w = 0; w < PL; w++) row[w] = zm;
                for (int32_t w = PL + W; w < WP; w++) row[w] = zm;
            }
        }
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
