/* The forward int8 kernels on seeded pseudo-random data, one line per case: a hash of the outputs (and
 * masks), the multiply-accumulates, and on bare metal the SysTick ticks the kernel took.  Built for the host
 * (the portable C99 loops) and for Cortex-M4 / M7 (the Arm DSP paths) by tests/test_kernels_dsp.py, which
 * checks that every line's hash is the same; benchmarks/kernels_cortex_m.py reads the ticks. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tte_runtime.h"

#ifdef TTE_BARE_METAL
uint64_t tte_ticks(void);
#define TICKS() tte_ticks()
#else
#define TICKS() 0u
#endif

static uint32_t rng_state;
static int32_t rnd(int32_t lo, int32_t hi) { /* uniform in [lo, hi] */
    rng_state = rng_state * 1664525u + 1013904223u;
    return lo + (int32_t)((rng_state >> 8) % (uint32_t)(hi - lo + 1));
}
static void fill(int8_t *p, size_t n, int32_t lo, int32_t hi) {
    for (size_t i = 0; i < n; i++) p[i] = (int8_t)rnd(lo, hi);
}

#define MAXX 40000
#define MAXW 20000
static int8_t x[MAXX], w[MAXW], w2[MAXW], y[MAXX];
static int32_t scratch_words[MAXX / 4]; /* word-aligned, as the emitted programs' */
#define scratch ((int8_t *)scratch_words)
static int32_t stage_bytes; /* the scratch a conv is given (0: none) */
static int pwdw_plane_only; /* a fused 1x1 + depthwise conv told of one plane of scratch, not all of it */
static int32_t pwdw_bytes;   /* else this much scratch (0: all of it) */
static int32_t dw_bytes;     /* the scratch a depthwise conv is given (0: its output plane) */
/* zero points outside int8 when set (0: none): the input's of conv() and pw_dw(), the mid one of pw_dw() */
static int32_t input_zp_override, mid_zp_override;
/* every input and weight -128 and the biases just below what the sums reach with int8 zero points: a sum that
 * starts at the bias would leave int32 unless the kernel counts the zero points as they are */
static int fold_edge;

static void fold_edge_fill(int32_t C, size_t nx, size_t nw, int32_t n, int32_t *b, float *m) {
    memset(x, 0x80, nx);
    memset(w, 0x80, nw);
    for (int32_t i = 0; i < n; i++) {
        b[i] = INT32_MAX - C * 65025 - 10;
        m[i] = 1e-7f;
    }
}
static uint8_t mask[MAXX / 8 + 1];
static int32_t zw[512], zw2[512], bias[512], bias2[512];
static float mult[512], mult2[512];

static uint32_t hash(uint32_t h, const void *data, size_t n) { /* FNV-1a */
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* 0: random multipliers; 1: powers of two (many exact ties for round half to even); 2: also huge, infinite and
 * NaN ones (the saturating ends) */
static int edge_multipliers;

static float multiplier(void) {
    if (edge_multipliers) {
        const int32_t k = rnd(0, 9);
        if (edge_multipliers == 2 && k == 0) return 1e30f;
        if (edge_multipliers == 2 && k == 1) return -1e30f * 1e30f; /* -inf */
        if (edge_multipliers == 2 && k == 2) { volatile float zero = 0.0f; return zero / zero; } /* NaN */
        return 1.0f / (float)(1 << rnd(0, 10));
    }
    return (float)rnd(1, 1000) * 1e-5f;
}

/* 1: biases at the int32 limits (the 3x3 depthwise path folds z_x's offset into the bias only where that fits) */
static int bias_limits;

static void params(int32_t o, int32_t *b, float *m, int32_t *z, int32_t zlo, int32_t zhi) {
    for (int32_t i = 0; i < o; i++) {
        b[i] = !bias_limits ? rnd(-3000, 3000) : i % 2 ? INT32_MAX - rnd(0, 3000) : INT32_MIN + rnd(0, 3000);
        m[i] = multiplier();
        z[i] = rnd(zlo, zhi);
    }
}

static void report(const char *name, int status, size_t ny, uint64_t macs, uint64_t ticks) {
    uint32_t h = hash(2166136261u, y, ny);
    h = hash(h, mask, (ny + 7) / 8);
    printf("case %s status %d hash %08lx macs %lu ticks %lu\n", name, status, (unsigned long)h, (unsigned long)macs,
           (unsigned long)ticks);
}

static int32_t out_size(int32_t in, int32_t k, int32_t s, int32_t p0, int32_t p1) { return (in + p0 + p1 - k) / s + 1; }

/* conv (regular, grouped or pointwise); split: trained input channels (< C: the rest frozen) */
static void conv(const char *name, int32_t C, int32_t H, int32_t W, int32_t O, int32_t groups, int32_t K, int32_t s,
                 int32_t p, int32_t split, int zps) {
    const int32_t CG = C / groups, HO = out_size(H, K, s, p, p), WO = out_size(W, K, s, p, p);
    tte_conv_geometry geo = {s, s, p, p, p, p, groups};
    tte_quant_params q = {rnd(-128, 127), rnd(-20, 20), -128, 127, NULL, NULL};
    if (input_zp_override) q.input_zero_point = input_zp_override;
    tte_dims xd = {1, C, H, W}, wd = {O, CG, K, K}, yd = {1, O, HO, WO};
    const size_t kk = (size_t)(K * K), nw = (size_t)O * (size_t)CG * kk;
    fill(x, (size_t)(C * H * W), -128, 127);
    fill(w, nw, -127, 127);
    params(O, bias, mult, zw, -128, 127);
    if (fold_edge) fold_edge_fill(C, (size_t)(C * H * W), nw, O, bias, mult);
    /* the split layout: rows of `split` trained channels, then rows of the frozen rest */
    tte_split_weights sw = {w, split < CG ? w + (size_t)O * (size_t)split * kk : NULL, split < CG ? split : CG};
    memset(y, 0, sizeof y);
    const uint64_t t0 = TICKS();
    const int st = tte_conv_s8(&geo, &q, &xd, x, &wd, &sw, zps ? zw : NULL, bias, mult, &yd, y, mask,
                               stage_bytes ? scratch : NULL, stage_bytes);
    const uint64_t t1 = TICKS();
    report(name, st, (size_t)(O * HO * WO), (uint64_t)O * (uint64_t)(HO * WO) * (uint64_t)CG * kk, t1 - t0);
}

static void dw(const char *name, int32_t C, int32_t H, int32_t W, int32_t K, int32_t s, int32_t pt, int32_t pb,
               int zps, int32_t zlo, int32_t zhi) {
    const int32_t HO = out_size(H, K, s, pt, pb), WO = out_size(W, K, s, pt, pb);
    tte_conv_geometry geo = {s, s, pt, pt, pb, pb, C};
    tte_quant_params q = {rnd(-128, 127), rnd(-20, 20), -100, 120, NULL, NULL};
    tte_dims xd = {1, C, H, W}, wd = {C, 1, K, K}, yd = {1, C, HO, WO};
    fill(x, (size_t)(C * H * W), -128, 127);
    fill(w, (size_t)(C * K * K), -127, 127);
    params(C, bias, mult, zw, zlo, zhi);
    tte_split_weights sw = {w, NULL, C};
    memset(y, 0, sizeof y);
    const uint64_t t0 = TICKS();
    const int32_t bytes = dw_bytes ? dw_bytes : HO * WO; /* default: the output plane, no room for a padded one */
    const int st =
        tte_conv_dw_s8(&geo, &q, &xd, x, &wd, &sw, zps ? zw : NULL, bias, mult, &yd, y, mask, scratch, bytes);
    const uint64_t t1 = TICKS();
    report(name, st, (size_t)(C * HO * WO), (uint64_t)C * (uint64_t)(HO * WO * K * K), t1 - t0);
}

static void pw_dw(const char *name, int32_t C, int32_t H, int32_t W, int32_t M, int32_t K, int32_t s, int32_t p,
                  int zps) {
    const int32_t HO = out_size(H, K, s, p, p), WO = out_size(W, K, s, p, p);
    tte_conv_geometry geo = {s, s, p, p, p, p, M};
    tte_quant_params q1 = {rnd(-128, 127), rnd(-128, 127), -128, 127, NULL, NULL};
    tte_quant_params q2 = {q1.output_zero_point, rnd(-20, 20), -128, 127, NULL, NULL};
    if (input_zp_override) q1.input_zero_point = input_zp_override;
    if (mid_zp_override) q1.output_zero_point = q2.input_zero_point = mid_zp_override;
    tte_dims xd = {1, C, H, W}, w2d = {M, 1, K, K}, yd = {1, M, HO, WO};
    fill(x, (size_t)(C * H * W), -128, 127);
    fill(w, (size_t)(M * C), -127, 127);
    fill(w2, (size_t)(M * K * K), -127, 127);
    params(M, bias, mult, zw, -128, 127);
    params(M, bias2, mult2, zw2, -128, 127);
    if (fold_edge) fold_edge_fill(C, (size_t)(C * H * W), (size_t)(M * C), M, bias, mult);
    memset(y, 0, sizeof y);
    memset(mask, 0, sizeof mask);
    const uint64_t t0 = TICKS();
    const int32_t bytes = pwdw_plane_only ? H * W : pwdw_bytes ? pwdw_bytes : (int32_t)sizeof scratch_words;
    /* zps 1: zero points for both convs' weights, 2: for the depthwise conv's only */
    const int st = tte_conv_pw_dw_s8(&q1, w, zps == 1 ? zw : NULL, bias, mult, &geo, &q2, &w2d, w2, zps ? zw2 : NULL,
                                     bias2, mult2, &xd, x, &yd, y, scratch, bytes);
    const uint64_t t1 = TICKS();
    report(name, st, (size_t)(M * HO * WO), (uint64_t)M * (uint64_t)(H * W * C + HO * WO * K * K), t1 - t0);
}

static void gemm(const char *name, int32_t n, int32_t k, int32_t m, int zps) {
    tte_quant_params q = {rnd(-128, 127), rnd(-20, 20), -128, 127, NULL, NULL};
    fill(x, (size_t)(n * k), -128, 127);
    fill(w, (size_t)(m * k), -127, 127);
    params(m, bias, mult, zw, -128, 127);
    memset(y, 0, sizeof y);
    const uint64_t t0 = TICKS();
    const int st = tte_gemm_s8(&q, n, k, m, x, w, zps ? zw : NULL, bias, mult, y, mask);
    const uint64_t t1 = TICKS();
    report(name, st, (size_t)(n * m), (uint64_t)(n * k * m), t1 - t0);
}

/* The float backward (tte_conv_grad_input_f32, tte_conv_weight_update_s8): their Arm builds unroll tiles into
 * registers and multiply-add with VMLA.F32 (the product rounded, then added); the bits must be the host's. */
#define MAXF 6144
static float fdz[MAXF], fdx[MAXF], fscratch[1024], fscales[512], ffactors[512], fresidual[512];
/* the scratch a weight update is told it has (a pointwise one on a Cortex-M FPU converts its inputs into it) */
static int32_t wu_scratch_bytes = (int32_t)sizeof fscratch;
static float frnd(void) { return (float)rnd(-1000, 1000) * 1e-3f; }

static void report_bytes(const char *name, int status, const void *data, size_t n, uint64_t macs, uint64_t ticks) {
    printf("case %s status %d hash %08lx macs %lu ticks %lu\n", name, status, (unsigned long)hash(2166136261u, data, n),
           (unsigned long)macs, (unsigned long)ticks);
}

/* a depthwise input gradient with pads pt (top, left) and pb (bottom, right), n samples, dz first copied into dx and
 * the kernel run in place when in_place (the programs run depthwise ones so) */
static void grad_input_dw(const char *name, int32_t N, int32_t C, int32_t H, int32_t W, int32_t K, int32_t s,
                          int32_t pt, int32_t pb, int in_place) {
    const int32_t HO = out_size(H, K, s, pt, pb), WO = out_size(W, K, s, pt, pb);
    tte_conv_geometry geo = {s, s, pt, pt, pb, pb, C};
    tte_dims wd = {C, 1, K, K}, dzd = {N, C, HO, WO}, xd = {N, C, H, W};
    for (int32_t i = 0; i < N * C * HO * WO; i++) fdz[i] = frnd();
    fill(w, (size_t)(C * K * K), -127, 127);
    for (int32_t i = 0; i < C; i++) {
        fscales[i] = (float)rnd(1, 1000) * 1e-4f;
        zw[i] = rnd(-20, 20);
    }
    const tte_weights_s8 ws = {{w, NULL, C}, zw, fscales};
    if (in_place) memcpy(fdx, fdz, sizeof(float) * (size_t)(N * C * HO * WO));
    const uint64_t t0 = TICKS();
    const int st = tte_conv_grad_input_f32(&geo, &wd, &ws, &dzd, in_place ? fdx : fdz, &xd, fdx, fscratch);
    const uint64_t t1 = TICKS();
    report_bytes(name, st, fdx, sizeof(float) * (size_t)(N * C * H * W), (uint64_t)(N * C * HO * WO * K * K), t1 - t0);
}

/* the bias update (its gradient: each channel's sum over samples, then positions): int32 biases near zero and near
 * the int32 limits, gradients of both signs */
static void bias_update(const char *name, int32_t N, int32_t O, int32_t H, int32_t W, int32_t rounding) {
    static int32_t b[512];
    const tte_dims dzd = {N, O, H, W};
    for (int32_t i = 0; i < N * O * H * W; i++) fdz[i] = frnd();
    for (int32_t i = 0; i < O; i++) {
        b[i] = i % 5 == 4 ? INT32_MAX - rnd(0, 100) : i % 5 == 3 ? INT32_MIN + rnd(0, 100) : rnd(-5000, 5000);
        ffactors[i] = (float)rnd(1000, 900000) * 1e-3f;
    }
    const tte_sgd_params sgd = {0.05f, rounding, 7u, 3u, 11u, INT32_MIN, INT32_MAX, NULL};
    const uint64_t t0 = TICKS();
    const int st = tte_bias_update_s32(&dzd, fdz, ffactors, &sgd, b);
    const uint64_t t1 = TICKS();
    report_bytes(name, st, b, sizeof(int32_t) * (size_t)O, (uint64_t)(N * O * H * W), t1 - t0);
}

static void grad_input(const char *name, int32_t O, int32_t C, int32_t H, int32_t W, int32_t K, int32_t s, int32_t p,
                       int32_t groups, int zps) {
    const int32_t CG = C / groups, HO = out_size(H, K, s, p, p), WO = out_size(W, K, s, p, p);
    tte_conv_geometry geo = {s, s, p, p, p, p, groups};
    tte_dims wd = {O, CG, K, K}, dzd = {1, O, HO, WO}, xd = {1, C, H, W};
    for (int32_t i = 0; i < O * HO * WO; i++) fdz[i] = frnd();
    fill(w, (size_t)(O * CG * K * K), -127, 127);
    for (int32_t i = 0; i < O; i++) {
        fscales[i] = (float)rnd(1, 1000) * 1e-4f;
        zw[i] = rnd(-20, 20);
    }
    const tte_weights_s8 ws = {{w, NULL, groups > 1 ? O : CG}, zps ? zw : NULL, fscales};
    const uint64_t t0 = TICKS();
    const int st = tte_conv_grad_input_f32(&geo, &wd, &ws, &dzd, fdz, &xd, fdx, fscratch);
    const uint64_t t1 = TICKS();
    report_bytes(name, st, fdx, sizeof(float) * (size_t)(C * H * W), (uint64_t)(O * HO * WO * CG * K * K), t1 - t0);
}

static void weight_update(const char *name, int32_t O, int32_t C, int32_t H, int32_t W, int32_t K, int32_t depthwise,
                          int32_t rounding) {
    const int32_t p = K / 2, HO = out_size(H, K, 1, p, p), WO = out_size(W, K, 1, p, p), cols = depthwise ? 1 : C;
    tte_conv_geometry geo = {1, 1, p, p, p, p, depthwise ? O : 1};
    tte_dims wd = {O, cols, K, K}, dzd = {1, O, HO, WO}, xd = {1, C, H, W};
    for (int32_t i = 0; i < O * HO * WO; i++) fdz[i] = frnd();
    fill(x, (size_t)(C * H * W), -128, 127);
    fill(w, (size_t)(O * cols * K * K), -127, 127);
    for (int32_t i = 0; i < O; i++) ffactors[i] = (float)rnd(1000, 90000) * 1e-3f;
    const tte_saved_s8 xs = {x, rnd(-20, 20), 0.02f};
    const int accumulate = rounding == TTE_ROUND_ACCUMULATE && O * cols * K * K <= 512;
    if (accumulate)
        for (int32_t i = 0; i < O * cols * K * K; i++) fresidual[i] = frnd() * 0.5f;
    const tte_sgd_params sgd = {0.05f, rounding, 7u, 3u, 11u, -127, 127, accumulate ? fresidual : NULL};
    const uint64_t t0 = TICKS();
    const int st = tte_conv_weight_update_s8(&geo, depthwise, depthwise ? O : C, &xd, &xs, &dzd, fdz, ffactors, &sgd,
                                             &wd, w, fscratch, wu_scratch_bytes);
    const uint64_t t1 = TICKS();
    report_bytes(name, st, w, (size_t)(O * cols * K * K), (uint64_t)(O * HO * WO * cols * K * K), t1 - t0);
    if (accumulate) {
        char residual[80];
        snprintf(residual, sizeof residual, "%s-residual", name);
        report_bytes(residual, st, fresidual, sizeof(float) * (size_t)(O * cols * K * K), 0, 0);
    }
}

int main(void) {
#if defined(__ARM_FEATURE_DSP)
    printf("dsp 1\n");
#else
    printf("dsp 0\n");
#endif
    rng_state = 12345u;
    /* pointwise: every tail (C % 4, odd O, odd H * W) and split weights */
    conv("pw-16x8-8x8", 16, 8, 8, 8, 1, 1, 1, 0, 16, 0);
    conv("pw-7x5-5x3", 7, 5, 3, 5, 1, 1, 1, 0, 7, 0);
    conv("pw-17x3-3x3-split5", 17, 3, 3, 3, 1, 1, 1, 0, 5, 0);
    conv("pw-24x16-4x4-split8", 24, 4, 4, 16, 1, 1, 1, 0, 8, 0);
    conv("pw-3x1-1x1", 3, 1, 1, 1, 1, 1, 1, 0, 3, 0);
    conv("pw-zps-16x8-6x6", 16, 6, 6, 8, 1, 1, 1, 0, 16, 1);
    /* the stem and other regular convs */
    conv("stem-3x8-3x3s2", 3, 17, 17, 8, 1, 3, 2, 1, 3, 1);
    conv("conv-8x8-3x3s1-split3", 8, 7, 7, 8, 1, 3, 1, 1, 3, 0);
    conv("grouped-8x8-3x3", 8, 6, 6, 8, 2, 3, 1, 1, 4, 1);
    /* depthwise: kernels 3, 5, 7 and 9 (> TTE_DW_FAST_TAPS: tap-checked), strides 1 and 2, asymmetric pads,
     * weight zero points outside int8 */
    dw("dw-3x3s1p1", 8, 9, 9, 3, 1, 1, 1, 1, -128, 127);
    dw("dw-3x3s2p1", 8, 10, 10, 3, 2, 1, 1, 0, 0, 0);
    dw("dw-3x3s2p01", 5, 9, 9, 3, 2, 0, 1, 1, -128, 127);
    dw("dw-5x5s1p2", 4, 11, 11, 5, 1, 2, 2, 1, -128, 127);
    dw("dw-5x5s2p2", 4, 12, 12, 5, 2, 2, 2, 0, 0, 0);
    dw("dw-7x7s1p3", 3, 12, 12, 7, 1, 3, 3, 1, -128, 127);
    dw("dw-9x9s1p4", 2, 11, 11, 9, 1, 4, 4, 1, -128, 127);
    dw("dw-3x3-zp-wide", 3, 8, 8, 3, 1, 1, 1, 1, 150, 300);
    dw("dw-3x3-no-interior", 3, 2, 2, 3, 1, 1, 1, 1, -128, 127);
    /* fused pointwise + depthwise */
    pw_dw("pwdw-8x16-8x8-3x3s1", 8, 8, 8, 16, 3, 1, 1, 0);
    pw_dw("pwdw-5x6-7x5-3x3s2", 5, 7, 5, 6, 3, 2, 1, 1);
    pw_dw("pwdw-16x24-9x9-5x5s1", 16, 9, 9, 24, 5, 1, 2, 1);
    pw_dw("pwdw-3x4-3x3-7x7s2", 3, 3, 3, 4, 7, 2, 3, 1);
    /* gemm */
    gemm("gemm-1x160x10", 1, 160, 10, 0);
    gemm("gemm-2x33x5", 2, 33, 5, 1);
    gemm("gemm-3x3x4", 3, 3, 4, 1);
    /* exact ties, saturation, NaN */
    for (edge_multipliers = 1; edge_multipliers <= 2; edge_multipliers++) {
        conv(edge_multipliers == 1 ? "ties-pw" : "edges-pw", 16, 6, 6, 8, 1, 1, 1, 0, 16, 0);
        conv(edge_multipliers == 1 ? "ties-stem" : "edges-stem", 3, 9, 9, 8, 1, 3, 2, 1, 3, 1);
        dw(edge_multipliers == 1 ? "ties-dw" : "edges-dw", 8, 9, 9, 3, 1, 1, 1, 1, -128, 127);
        pw_dw(edge_multipliers == 1 ? "ties-pwdw" : "edges-pwdw", 8, 8, 8, 16, 3, 1, 1, 1);
        gemm(edge_multipliers == 1 ? "ties-gemm" : "edges-gemm", 2, 40, 12, 1);
    }
    edge_multipliers = 0;
    /* float backward: pointwise tiles and their edges, depthwise 3x3 / 5x5 at strides 1 and 2, a regular conv */
    grad_input("gi-pw-24x16-4x4", 24, 16, 4, 4, 1, 1, 0, 1, 1);
    grad_input("gi-pw-13x7-5x3", 13, 7, 5, 3, 1, 1, 0, 1, 0);
    grad_input("gi-pw-40x33-8x8", 40, 33, 8, 8, 1, 1, 0, 1, 0);
    grad_input("gi-dw-3x3s1-12x9x9", 12, 12, 9, 9, 3, 1, 1, 12, 1);
    grad_input("gi-dw-3x3s2-12x10x10", 12, 12, 10, 10, 3, 2, 1, 12, 0);
    grad_input("gi-dw-5x5s1-6x8x8", 6, 6, 8, 8, 5, 1, 2, 6, 0);
    grad_input("gi-conv-8x3-9x9s2", 8, 3, 9, 9, 3, 2, 1, 1, 0);
    weight_update("wu-pw-24x16-4x4-stochastic", 24, 16, 4, 4, 1, 0, TTE_ROUND_STOCHASTIC);
    weight_update("wu-pw-13x7-5x3-nearest", 13, 7, 5, 3, 1, 0, TTE_ROUND_NEAREST);
    weight_update("wu-pw-40x33-8x8-trunc", 40, 33, 8, 8, 1, 0, TTE_ROUND_TRUNC);
    weight_update("wu-dw-3x3-12x9x9-stochastic", 12, 12, 9, 9, 3, 1, TTE_ROUND_STOCHASTIC);
    /* larger, for the per-MAC figures of benchmarks/kernels_cortex_m.py */
    stage_bytes = 4096; /* convs as the programs run them: with scratch */
    conv("bench-pw-32x16-16x16", 32, 16, 16, 16, 1, 1, 1, 0, 32, 0);
    conv("bench-stem-3x16-32x32s2", 3, 32, 32, 16, 1, 3, 2, 1, 3, 0);
    dw("bench-dw-3x3s1-32x16x16", 32, 16, 16, 3, 1, 1, 1, 0, 0, 0);
    dw("bench-dw-3x3s2-32x16x16", 32, 16, 16, 3, 2, 1, 1, 0, 0, 0);
    conv("bench-pw-96x24-16x16", 96, 16, 16, 24, 1, 1, 1, 0, 96, 0);
    stage_bytes = 0;
    dw("bench-dw-5x5s1-32x16x16", 32, 16, 16, 5, 1, 2, 2, 0, 0, 0);
    dw("bench-dw-7x7s2-16x32x32", 16, 32, 32, 7, 2, 3, 3, 0, 0, 0);
    pw_dw("bench-pwdw-16x48-16x16-3x3s1", 16, 16, 16, 48, 3, 1, 1, 0);
    pw_dw("bench-pwdw-8x48-32x32-3x3s2", 8, 32, 32, 48, 3, 2, 1, 0);
    gemm("bench-gemm-1x160x100", 1, 160, 100, 0);
    grad_input("bench-gi-pw-64x96-8x8", 64, 96, 8, 8, 1, 1, 0, 1, 0);
    grad_input("bench-gi-dw-3x3s1-96x8x8", 96, 96, 8, 8, 3, 1, 1, 96, 0);
    weight_update("bench-wu-pw-64x96-8x8", 64, 96, 8, 8, 1, 0, TTE_ROUND_STOCHASTIC);
    /* pointwise convs with scratch (the Arm DSP path stages chunks of positions there): room for 4 positions (or too
     * little for any), for a few chunks, for whole runs; splits whose parts leave channels past their groups of 4 */
    static const struct { /* conv()'s arguments */
        const char *name;
        int32_t C, H, W, O, groups, K, s, p, split, zps;
    } staged[] = {
        {"pw-16x8-8x8", 16, 8, 8, 8, 1, 1, 1, 0, 16, 0},
        {"pw-7x5-5x3", 7, 5, 3, 5, 1, 1, 1, 0, 7, 0},
        {"pw-17x3-3x3-split5", 17, 3, 3, 3, 1, 1, 1, 0, 5, 0},
        {"pw-24x16-4x4-split8", 24, 4, 4, 16, 1, 1, 1, 0, 8, 0},
        {"pw-29x6-6x7-split10", 29, 6, 7, 6, 1, 1, 1, 0, 10, 0},
        {"pw-3x1-1x1", 3, 1, 1, 1, 1, 1, 1, 0, 3, 0},
        {"pw-64x5-3x5", 64, 3, 5, 5, 1, 1, 1, 0, 64, 0},
        /* small regular convs (the stem: windows gathered): odd channels and positions, weight zero points, splits */
        {"stem-3x8-3x3s2", 3, 17, 17, 8, 1, 3, 2, 1, 3, 1},
        {"stem-3x7-3x3s2-split2", 3, 9, 11, 7, 1, 3, 2, 1, 2, 0},
        {"conv-2x5-5x5s1", 2, 7, 6, 5, 1, 5, 1, 2, 2, 1},
        {"conv-7x3-3x3s1", 7, 5, 5, 3, 1, 3, 1, 1, 7, 0},
        {"pw-21x4-3x4-split3", 21, 3, 4, 4, 1, 1, 1, 0, 3, 0}, /* no trained group of 4 */
    };
    for (int k = 0; k < 3; k++) {
        static const int32_t bytes[3] = {192, 700, 16384};
        stage_bytes = bytes[k];
        for (size_t i = 0; i < sizeof staged / sizeof staged[0]; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s-scratch%ld", staged[i].name, (long)stage_bytes);
            conv(name, staged[i].C, staged[i].H, staged[i].W, staged[i].O, staged[i].groups, staged[i].K, staged[i].s,
                 staged[i].p, staged[i].split, staged[i].zps);
        }
    }
    stage_bytes = 0;
    for (edge_multipliers = 1; edge_multipliers <= 2; edge_multipliers++) {
        stage_bytes = 4096;
        conv(edge_multipliers == 1 ? "ties-pw-staged" : "edges-pw-staged", 16, 6, 6, 8, 1, 1, 1, 0, 16, 0);
    }
    edge_multipliers = 0;
    stage_bytes = 0;
    /* pointwise input gradients: a plane of fewer positions than a tile, output channels in several blocks */
    grad_input("gi-pw-9x6-2x2", 9, 6, 2, 2, 1, 1, 0, 1, 1);
    grad_input("gi-pw-70x12-3x3", 70, 12, 3, 3, 1, 1, 0, 1, 0);
    /* 3x3 depthwise at stride 1 on planes too large for a padding copy: whole windows two at a time, the border
     * rows and columns apart, odd output widths; without padding; a row stride of 2; biases at the int32 limits */
    dw("dw-3x3s1p1-24x21", 3, 24, 21, 3, 1, 1, 1, 1, -128, 127);
    dw("dw-3x3s1p0-22x25", 2, 22, 25, 3, 1, 0, 0, 0, 0, 0);
    dw("dw-3x3s1p01-23x20", 2, 23, 20, 3, 1, 0, 1, 1, -128, 127);
    pw_dw("pwdw-6x5-20x19-3x3s1", 6, 20, 19, 5, 3, 1, 1, 1);
    dw("dw-3x3s2p1-25x22", 3, 25, 22, 3, 2, 1, 1, 1, -128, 127);
    dw("dw-3x3s2p01-24x23", 2, 24, 23, 3, 2, 0, 1, 0, 0, 0);
    pw_dw("pwdw-5x4-21x24-3x3s2", 5, 21, 24, 4, 3, 2, 1, 1);
    for (pwdw_plane_only = 1; pwdw_plane_only >= 0; pwdw_plane_only--) { /* the plane inside its padding, or not */
        pw_dw(pwdw_plane_only ? "pwdw-7x6-17x18-3x3s1-plane" : "pwdw-7x6-17x18-3x3s1", 7, 17, 18, 6, 3, 1, 1, 1);
        pw_dw(pwdw_plane_only ? "pwdw-4x5-19x16-5x5s2-plane" : "pwdw-4x5-19x16-5x5s2", 4, 19, 16, 5, 5, 2, 2, 0);
    }
    pwdw_plane_only = 0;
    dw("dw-5x5s1p2-22x19", 3, 22, 19, 5, 1, 2, 2, 1, -128, 127); /* 5x5 and 7x7 two outputs at a time */
    dw("dw-7x7s1p3-20x17", 2, 20, 17, 7, 1, 3, 3, 0, 0, 0);
    dw("dw-7x7s1p3-4x4", 5, 4, 4, 7, 1, 3, 3, 1, -128, 127);
    for (bias_limits = 1; bias_limits >= 0; bias_limits--) { /* then the same data with ordinary biases */
        rng_state = 99u;
        dw(bias_limits ? "limits-dw-small" : "ordinary-dw-small", 4, 9, 9, 3, 1, 1, 1, 1, -128, 127);
        dw(bias_limits ? "limits-dw-large" : "ordinary-dw-large", 4, 24, 21, 3, 1, 1, 1, 1, -128, 127);
        pw_dw(bias_limits ? "limits-pwdw" : "ordinary-pwdw", 12, 9, 10, 8, 3, 1, 1, 0);
    }
    bias_limits = 0;
    /* depthwise input gradients at stride 1 (on Arm, 3x3 through a ring of zero-padded dz rows): in place, pads 0 to
     * 2 and asymmetric, odd heights, widths past a multiple of 4, two samples, rows at the ring's limit and past it */
    grad_input_dw("gi-dw-3x3-inplace-9x7", 1, 5, 9, 7, 3, 1, 1, 1, 1);
    grad_input_dw("gi-dw-3x3-p0-2x3x10x13", 2, 3, 10, 13, 3, 1, 0, 0, 0);
    grad_input_dw("gi-dw-3x3-p01-7x6", 2, 3, 7, 6, 3, 1, 0, 1, 0);
    grad_input_dw("gi-dw-3x3-p0-inplace-1ch", 1, 1, 9, 8, 3, 1, 0, 0, 1); /* dx larger than dz: one plane */
    grad_input_dw("gi-dw-3x3-p2-5x5", 1, 4, 5, 5, 3, 1, 2, 2, 0);
    grad_input_dw("gi-dw-3x3-p20-inplace-6x9", 1, 2, 6, 9, 3, 1, 2, 0, 1);
    grad_input_dw("gi-dw-3x3-1x1", 1, 3, 1, 1, 3, 1, 1, 1, 1);
    grad_input_dw("gi-dw-3x3-w30", 1, 2, 5, 30, 3, 1, 1, 1, 1);
    grad_input_dw("gi-dw-3x3-w31", 1, 2, 5, 31, 3, 1, 1, 1, 1);
    grad_input_dw("gi-dw-3x3s2-inplace-9x9", 1, 3, 9, 9, 3, 2, 1, 1, 1);
    grad_input_dw("gi-dw-5x5-inplace-8x8", 1, 3, 8, 8, 5, 1, 2, 2, 1);
    grad_input_dw("gi-dw-5x5-p13-2x3x9x7", 2, 3, 9, 7, 5, 1, 1, 3, 0);
    grad_input_dw("gi-dw-5x5-p4-inplace-6x5", 1, 2, 6, 5, 5, 1, 4, 0, 1);
    grad_input_dw("gi-dw-7x7-inplace-11x10", 1, 3, 11, 10, 7, 1, 3, 3, 1);
    grad_input_dw("gi-dw-7x7-p06-7x9", 1, 2, 7, 9, 7, 1, 0, 6, 0);
    grad_input_dw("gi-dw-7x7-w17", 1, 2, 5, 17, 7, 1, 3, 3, 1);
    grad_input_dw("gi-dw-7x7-w20", 1, 2, 5, 20, 7, 1, 3, 3, 1);
    grad_input_dw("gi-dw-5x5-w20-noinplace", 1, 2, 6, 20, 5, 1, 2, 2, 0);
    /* at stride 2, zero-stuffed rows (out of place: dx is larger than dz) */
    grad_input_dw("gi-dw-3x3s2-p01-9x8", 2, 3, 9, 8, 3, 2, 0, 1, 0);
    grad_input_dw("gi-dw-5x5s2-p2-11x10", 1, 3, 11, 10, 5, 2, 2, 2, 0);
    grad_input_dw("gi-dw-7x7s2-p23-8x8", 1, 4, 8, 8, 7, 2, 2, 3, 0);
    grad_input_dw("gi-dw-7x7s2-p3-16x15", 1, 2, 16, 15, 7, 2, 3, 3, 0);
    /* pointwise weight updates: blocks of 4 x 3 at the ends of rows and columns, positions past the last 4 (or
     * fewer than 4 in all), too few rows or columns for a block, the residual of accumulate; then without the
     * scratch for converted inputs (the unconverted tiles) */
    for (int k = 0; k < 2; k++) {
        wu_scratch_bytes = k == 0 ? (int32_t)sizeof fscratch : 12 * 9 - 1;
        const char *tag = k == 0 ? "" : "-noscratch";
        char name[64];
        static const struct {
            const char *name;
            int32_t O, C, H, W, rounding;
        } wu[] = {
            {"wu-pw-13x7-5x3", 13, 7, 5, 3, TTE_ROUND_STOCHASTIC},
            {"wu-pw-9x5-1x3", 9, 5, 1, 3, TTE_ROUND_NEAREST},
            {"wu-pw-3x8-3x3", 3, 8, 3, 3, TTE_ROUND_TRUNC},
            {"wu-pw-8x2-3x3", 8, 2, 3, 3, TTE_ROUND_STOCHASTIC},
            {"wu-pw-4x3-2x2", 4, 3, 2, 2, TTE_ROUND_STOCHASTIC},
            {"wu-pw-17x10-3x3", 17, 10, 3, 3, TTE_ROUND_ACCUMULATE},
        };
        for (size_t i = 0; i < sizeof wu / sizeof wu[0]; i++) {
            snprintf(name, sizeof name, "%s%s", wu[i].name, tag);
            weight_update(name, wu[i].O, wu[i].C, wu[i].H, wu[i].W, 1, 0, wu[i].rounding);
        }
    }
    wu_scratch_bytes = (int32_t)sizeof fscratch;
    bias_update("bias-16x4x4-stochastic", 1, 16, 4, 4, TTE_ROUND_STOCHASTIC);
    bias_update("bias-2x9x3x3-nearest", 2, 9, 3, 3, TTE_ROUND_NEAREST);
    bias_update("bias-7x2x2-trunc", 1, 7, 2, 2, TTE_ROUND_TRUNC);
    bias_update("bias-40x8x8-stochastic", 1, 40, 8, 8, TTE_ROUND_STOCHASTIC);
    /* inputs the emitted programs do not make, where a fast path must step aside: a depthwise input gradient in place
     * at stride 2 whose dz happens to have dx's size; a mid zero point outside int8 (no padded plane); input zero
     * points outside int8 with biases at the int32 limits (no sums started at the bias) */
    grad_input_dw("gi-dw-3x3s2-p25-inplace-6x6", 1, 1, 6, 6, 3, 2, 2, 5, 1);
    mid_zp_override = 200;
    pw_dw("pwdw-zm200-2x1-20x20", 2, 20, 20, 1, 3, 1, 1, 0);
    mid_zp_override = 0;
    input_zp_override = 400;
    fold_edge = 1;
    pw_dw("pwdw-zx400-edge", 64, 4, 5, 3, 3, 1, 1, 0);
    stage_bytes = 4096;
    conv("pw-zx400-edge", 64, 4, 5, 6, 1, 1, 1, 0, 64, 0);
    stage_bytes = 0;
    fold_edge = 0;
    input_zp_override = 0;
    /* the fused 1x1 + depthwise conv's staged path (symmetric 1x1 weights, channels in groups of 4, even widths):
     * bands of output rows as the scratch allows (3x3 at strides 1 and 2, 5x5, 7x7 at stride 2), an odd number of
     * channel groups, one group, an input zero point outside int8, too little scratch for bands that save anything
     * (the per-channel path) */
    pwdw_bytes = 3400;
    pw_dw("pwdw-st-12x5-14x10-3x3s1-bands", 12, 14, 10, 5, 3, 1, 1, 2);
    pwdw_bytes = 1200;
    pw_dw("pwdw-st-8x6-17x12-3x3s2-bands", 8, 17, 12, 6, 3, 2, 1, 0);
    pwdw_bytes = 2900;
    pw_dw("pwdw-st-4x3-40x8-5x5s1-bands", 4, 40, 8, 3, 5, 1, 2, 2);
    pwdw_bytes = 5200;
    pw_dw("pwdw-st-16x4-44x6-7x7s2-bands", 16, 44, 6, 4, 7, 2, 3, 0);
    pwdw_bytes = 0;
    pw_dw("pwdw-st-24x8-8x8-3x3s1", 24, 8, 8, 8, 3, 1, 1, 2);
    pw_dw("pwdw-st-4x2-3x2-3x3s1", 4, 3, 2, 2, 3, 1, 1, 0);
    pw_dw("pwdw-st-40x3-4x4-3x3s2", 40, 4, 4, 3, 3, 2, 1, 2);
    pwdw_bytes = 1450;
    input_zp_override = 300;
    pw_dw("pwdw-st-zx300-8x4-12x8-3x3s1", 8, 12, 8, 4, 3, 1, 1, 2);
    input_zp_override = 0;
    pwdw_bytes = 200;
    pw_dw("pwdw-st-small-8x4-12x8-3x3s1", 8, 12, 8, 4, 3, 1, 1, 0);
    pwdw_bytes = 0;
    for (edge_multipliers = 1; edge_multipliers <= 2; edge_multipliers++)
        pw_dw(edge_multipliers == 1 ? "ties-pwdw-st" : "edges-pwdw-st", 8, 8, 8, 16, 3, 1, 1, 2);
    /* depthwise convs with room for the input plane inside its padding (planes past the stack copy's 18 x 18): 3x3
     * at strides 1 and 2, uneven pads, 5x5, 7x7, weight zero points (in int8, and outside: the tap-checked loop);
     * one byte too little room (the border windows) */
    dw_bytes = (int32_t)sizeof scratch_words;
    dw("dw-pad-3x3s1p1-24x21", 3, 24, 21, 3, 1, 1, 1, 1, -128, 127);
    dw("dw-pad-3x3s2p01-24x23", 2, 24, 23, 3, 2, 0, 1, 0, 0, 0);
    dw("dw-pad-3x3s1p0-22x25", 2, 22, 25, 3, 1, 0, 0, 0, 0, 0);
    dw("dw-pad-5x5s1p2-22x19", 3, 22, 19, 5, 1, 2, 2, 1, -128, 127);
    dw("dw-pad-7x7s2p3-20x17", 2, 20, 17, 7, 2, 3, 3, 0, 0, 0);
    dw("dw-pad-3x3-zp-wide-20x20", 2, 20, 20, 3, 1, 1, 1, 1, 150, 300);
    dw_bytes = 24 * 21 + 26 * 23 - 1;
    dw("dw-pad-short-3x3s1p1-24x21", 3, 24, 21, 3, 1, 1, 1, 1, -128, 127);
    dw_bytes = 0;
    edge_multipliers = 0;
    fold_edge = 1;
    pw_dw("pwdw-st-fold-edge", 12, 6, 8, 5, 3, 1, 1, 0);
    fold_edge = 0;
    return 0;
}
