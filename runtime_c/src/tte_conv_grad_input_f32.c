#include <string.h>

#include "tte_internal.h"
#include "tte_runtime.h"

int32_t tte_conv_grad_input_f32_get_buffer_size(const tte_dims *in_dims) {
    return (int32_t)sizeof(float) * in_dims->h * in_dims->w;
}

/* The pointwise tile: TTE_PW_TILE_C channels x TTE_PW_TILE_P positions whose accumulators stay in registers while
 * the output channels o run (a host's vector registers hold 8 x 16, a Cortex-M's 32 single-precision registers
 * 3 x 8 beside the 8 dz values of a row). */
#if defined(__arm__) && defined(TTE_ARM_ASM) && defined(__ARM_FP) && (__ARM_FP & 4)
#define TTE_GI_ARM 1 /* the hand-allocated tile below */
#define TTE_PW_TILE_C 4
#define TTE_PW_TILE_P 5
#elif defined(__arm__)
#define TTE_PW_TILE_C 3
#define TTE_PW_TILE_P 8
#else
#define TTE_PW_TILE_C 8
#define TTE_PW_TILE_P 16
#endif

#if !defined(TTE_GI_ARM)
/* dx[c0 + j, p0 + i] for a tile of channels j and positions i: each the sum over o = o0 .. o0 + n - 1 (ascending)
 * of dz[o, p0 + i] * W[o, c0 + j].  The innermost loop runs across positions i, independent elements next to each
 * other in dz and dx, so the compiler gives each its own vector lane (on Arm: its own register) while every element
 * still adds its terms one at a time in the reference's order (no reassociation); each weight is converted once
 * per tile and broadcast.  w: W[o0, c0], rows ldw apart; zp, scales: o0's (zp NULL: no zero points, a constant the
 * compiler folds where this is inlined); dz: dz[o0, p0] and dx: dx[c0, p0], planes P apart. */
static inline void grad_input_pw_tile_body(int32_t n, const int8_t *w, int32_t ldw, const int32_t *zp,
                                           const float *scales, const float *dz, int32_t P, float *dx) {
    float acc[TTE_PW_TILE_C][TTE_PW_TILE_P];
    TTE_ARM_UNROLL
    for (int32_t j = 0; j < TTE_PW_TILE_C; j++) {
        TTE_ARM_UNROLL
        for (int32_t i = 0; i < TTE_PW_TILE_P; i++) acc[j][i] = 0.0f;
    }
    for (int32_t o = 0; o < n; o++) {
        const int32_t wz = zp ? zp[o] : 0;
        const float scale = scales[o];
        float d[TTE_PW_TILE_P];
        TTE_ARM_UNROLL
        for (int32_t i = 0; i < TTE_PW_TILE_P; i++) d[i] = dz[i];
        TTE_ARM_UNROLL
        for (int32_t j = 0; j < TTE_PW_TILE_C; j++) {
            const float wr = (float)((int32_t)w[j] - wz) * scale;
            TTE_ARM_UNROLL
            for (int32_t i = 0; i < TTE_PW_TILE_P; i++) acc[j][i] = tte_mla_f32(acc[j][i], d[i], wr);
        }
        w += ldw;
        dz += P;
    }
    TTE_ARM_UNROLL
    for (int32_t j = 0; j < TTE_PW_TILE_C; j++) {
        TTE_ARM_UNROLL
        for (int32_t i = 0; i < TTE_PW_TILE_P; i++) dx[(size_t)j * (size_t)P + (size_t)i] = acc[j][i];
    }
}

static void grad_input_pw_tile(int32_t o0, int32_t o1, const int8_t *w, int32_t ldw, const tte_weights_s8 *ws,
                               const float *dz, int32_t P, float *dx) {
    if (ws->zero_points)
        grad_input_pw_tile_body(o1 - o0, w, ldw, ws->zero_points + o0, ws->scales + o0, dz, P, dx);
    else
        grad_input_pw_tile_body(o1 - o0, w, ldw, NULL, ws->scales + o0, dz, P, dx);
}

#endif

/* The same for a part of a tile, nc channels x np positions (a weight part of fewer than TTE_PW_TILE_C columns, a
 * plane of fewer than TTE_PW_TILE_P positions). */
static void grad_input_pw_edge(int32_t o0, int32_t o1, const int8_t *w, int32_t ldw, const tte_weights_s8 *ws,
                               const float *dz, int32_t P, int32_t nc, int32_t np, float *dx) {
    float acc[TTE_PW_TILE_C][TTE_PW_TILE_P];
    for (int32_t j = 0; j < nc; j++)
        for (int32_t i = 0; i < np; i++) acc[j][i] = 0.0f;
    for (int32_t o = o0; o < o1; o++) {
        const int8_t *wo = w + (size_t)(o - o0) * (size_t)ldw;
        const float *dzo = dz + (size_t)(o - o0) * (size_t)P;
        const int32_t wz = ws->zero_points ? ws->zero_points[o] : 0;
        for (int32_t j = 0; j < nc; j++) {
            const float wr = (float)((int32_t)wo[j] - wz) * ws->scales[o];
            for (int32_t i = 0; i < np; i++) acc[j][i] = tte_mla_f32(acc[j][i], dzo[i], wr);
        }
    }
    for (int32_t j = 0; j < nc; j++)
        for (int32_t i = 0; i < np; i++) dx[(size_t)j * (size_t)P + (size_t)i] = acc[j][i];
}

#if defined(TTE_GI_ARM)
/* A tile of 4 channels x 5 positions: row j of its sums read from src + j * ss bytes, then += dz[o * P + i] *
 * wf[4 o + j] for o = 0 .. n - 1 in turn (n >= 1), then row j written to dst + j * ds bytes.  The sums live in s12-s31,
 * a row of dz in s0-s4 and the 4 weights in s5-s8, each loaded by one VLDM; VMLA (the product rounded, then added:
 * the reference's two operations). */
static void tte_gi_pw_4x5(const float *dz, int32_t P, const float *wf, int32_t n, const float *src, int32_t ss,
                          float *dst, int32_t ds) {
    const int32_t P4 = 4 * P;
    const float *t;
    float *u;
    __asm__ volatile("vldmia %[src], {s12-s16}\n\t"
                     "add %[t], %[src], %[ss]\n\t"
                     "vldmia %[t], {s17-s21}\n\t"
                     "add %[t], %[t], %[ss]\n\t"
                     "vldmia %[t], {s22-s26}\n\t"
                     "add %[t], %[t], %[ss]\n\t"
                     "vldmia %[t], {s27-s31}\n\t"
                     "1:\n\t"
                     "vldmia %[dz], {s0-s4}\n\t"
                     "vldmia %[wf]!, {s5-s8}\n\t"
                     "add %[dz], %[dz], %[P4]\n\t"
                     "vmla.f32 s12, s0, s5\n\t"
                     "vmla.f32 s13, s1, s5\n\t"
                     "vmla.f32 s14, s2, s5\n\t"
                     "vmla.f32 s15, s3, s5\n\t"
                     "vmla.f32 s16, s4, s5\n\t"
                     "vmla.f32 s17, s0, s6\n\t"
                     "vmla.f32 s18, s1, s6\n\t"
                     "vmla.f32 s19, s2, s6\n\t"
                     "vmla.f32 s20, s3, s6\n\t"
                     "vmla.f32 s21, s4, s6\n\t"
                     "vmla.f32 s22, s0, s7\n\t"
                     "vmla.f32 s23, s1, s7\n\t"
                     "vmla.f32 s24, s2, s7\n\t"
                     "vmla.f32 s25, s3, s7\n\t"
                     "vmla.f32 s26, s4, s7\n\t"
                     "vmla.f32 s27, s0, s8\n\t"
                     "vmla.f32 s28, s1, s8\n\t"
                     "vmla.f32 s29, s2, s8\n\t"
                     "vmla.f32 s30, s3, s8\n\t"
                     "vmla.f32 s31, s4, s8\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     "vstmia %[dst], {s12-s16}\n\t"
                     "add %[u], %[dst], %[ds]\n\t"
                     "vstmia %[u], {s17-s21}\n\t"
                     "add %[u], %[u], %[ds]\n\t"
                     "vstmia %[u], {s22-s26}\n\t"
                     "add %[u], %[u], %[ds]\n\t"
                     "vstmia %[u], {s27-s31}"
                     : [dz] "+&r"(dz), [wf] "+&r"(wf), [n] "+&r"(n), [t] "=&r"(t), [u] "=&r"(u)
                     : [src] "r"(src), [ss] "r"(ss), [dst] "r"(dst), [ds] "r"(ds), [P4] "r"(P4)
                     : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s12", "s13", "s14", "s15",
                       "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29",
                       "s30", "s31");
}

/* tte_gi_pw_4x5 for a tile of 4 x 4 (16 positions of a 4 x 4 plane take 4 of these, not 4 of 5 positions). */
static void tte_gi_pw_4x4(const float *dz, int32_t P, const float *wf, int32_t n, const float *src, int32_t ss,
                          float *dst, int32_t ds) {
    const int32_t P4 = 4 * P;
    const float *t;
    float *u;
    __asm__ volatile("vldmia %[src], {s16-s19}\n\t"
                     "add %[t], %[src], %[ss]\n\t"
                     "vldmia %[t], {s20-s23}\n\t"
                     "add %[t], %[t], %[ss]\n\t"
                     "vldmia %[t], {s24-s27}\n\t"
                     "add %[t], %[t], %[ss]\n\t"
                     "vldmia %[t], {s28-s31}\n\t"
                     "1:\n\t"
                     "vldmia %[dz], {s0-s3}\n\t"
                     "vldmia %[wf]!, {s4-s7}\n\t"
                     "add %[dz], %[dz], %[P4]\n\t"
                     "vmla.f32 s16, s0, s4\n\t"
                     "vmla.f32 s17, s1, s4\n\t"
                     "vmla.f32 s18, s2, s4\n\t"
                     "vmla.f32 s19, s3, s4\n\t"
                     "vmla.f32 s20, s0, s5\n\t"
                     "vmla.f32 s21, s1, s5\n\t"
                     "vmla.f32 s22, s2, s5\n\t"
                     "vmla.f32 s23, s3, s5\n\t"
                     "vmla.f32 s24, s0, s6\n\t"
                     "vmla.f32 s25, s1, s6\n\t"
                     "vmla.f32 s26, s2, s6\n\t"
                     "vmla.f32 s27, s3, s6\n\t"
                     "vmla.f32 s28, s0, s7\n\t"
                     "vmla.f32 s29, s1, s7\n\t"
                     "vmla.f32 s30, s2, s7\n\t"
                     "vmla.f32 s31, s3, s7\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     "vstmia %[dst], {s16-s19}\n\t"
                     "add %[u], %[dst], %[ds]\n\t"
                     "vstmia %[u], {s20-s23}\n\t"
                     "add %[u], %[u], %[ds]\n\t"
                     "vstmia %[u], {s24-s27}\n\t"
                     "add %[u], %[u], %[ds]\n\t"
                     "vstmia %[u], {s28-s31}"
                     : [dz] "+&r"(dz), [wf] "+&r"(wf), [n] "+&r"(n), [t] "=&r"(t), [u] "=&r"(u)
                     : [src] "r"(src), [ss] "r"(ss), [dst] "r"(dst), [ds] "r"(ds), [P4] "r"(P4)
                     : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s16", "s17", "s18", "s19",
                       "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
}

/* grad_input_pointwise's tiles on Arm: for each 4 columns of a weight part, the output channels 32 at a time, their
 * weights converted once (wf) for every tile of 5 positions (of 4 where those cover the plane exactly and tiles of 5
 * would not: tte_gi_pw_4x4); a tile's partial sums wait in dx between blocks of output channels (stored and loaded as
 * float32: exact).  The positions past the whole tiles of 5: one more tile ending at the plane's end, its sums kept
 * apart (`last`) until every block is in, then stored (the positions it shares with the tile before get the same
 * values again).  Columns past the groups of 4, and planes of fewer than 5 positions: grad_input_pw_edge. */
#define TTE_GI_OBLOCK 32
static void grad_input_pw_part(int32_t o0, int32_t o1, const int8_t *base, int32_t ldw, const tte_weights_s8 *ws,
                               const float *dzg, int32_t P, int32_t cols, float *dxc) {
    static const float zeros[20];
    float wf[TTE_GI_OBLOCK * 4], last[20];
    const int32_t full = P / 5 * 5, P4 = 4 * P;
    /* tiles of 4 positions when they cover the plane exactly and tiles of 5 would not (4 x 4 planes) */
    const int by4 = P % 4 == 0 && P % 5 != 0 && P <= 32;
    int32_t c = 0;
    for (; c + 4 <= cols && P >= 5; c += 4) {
        float *dx = dxc + (size_t)c * (size_t)P;
        for (int32_t ob = o0; ob < o1; ob += TTE_GI_OBLOCK) {
            const int32_t nb = o1 - ob < TTE_GI_OBLOCK ? o1 - ob : TTE_GI_OBLOCK;
            const float *dzb = dzg + (size_t)(ob - o0) * (size_t)P;
            for (int32_t k = 0; k < nb; k++) { /* the scale in a register: the stores to wf may alias ws->scales */
                const int8_t *wr = base + (size_t)(ob - o0 + k) * (size_t)ldw + c;
                const int32_t wz = ws->zero_points ? ws->zero_points[ob + k] : 0;
                const float sk = ws->scales[ob + k];
                const float w0 = (float)((int32_t)wr[0] - wz) * sk, w1 = (float)((int32_t)wr[1] - wz) * sk;
                const float w2 = (float)((int32_t)wr[2] - wz) * sk, w3 = (float)((int32_t)wr[3] - wz) * sk;
                wf[4 * k] = w0;
                wf[4 * k + 1] = w1;
                wf[4 * k + 2] = w2;
                wf[4 * k + 3] = w3;
            }
            if (by4) {
                for (int32_t p = 0; p < P; p += 4)
                    tte_gi_pw_4x4(dzb + p, P, wf, nb, ob == o0 ? zeros : dx + p, ob == o0 ? 16 : P4, dx + p, P4);
                continue;
            }
            for (int32_t p = 0; p < full; p += 5)
                tte_gi_pw_4x5(dzb + p, P, wf, nb, ob == o0 ? zeros : dx + p, ob == o0 ? 20 : P4, dx + p, P4);
            if (full < P) tte_gi_pw_4x5(dzb + (P - 5), P, wf, nb, ob == o0 ? zeros : last, 20, last, 20);
        }
        if (full < P && !by4)
            for (int32_t j = 0; j < 4; j++) memcpy(dx + (size_t)j * (size_t)P + (size_t)(P - 5), last + 5 * j, 20);
    }
    for (; c < cols; c += 4) { /* the last columns (fewer than 4), or every column of a plane under 5 positions */
        const int32_t nc = cols - c < 4 ? cols - c : 4;
        for (int32_t p = 0; p < P; p += 5)
            grad_input_pw_edge(o0, o1, base + c, ldw, ws, dzg + p, P, nc, P - p < 5 ? P - p : 5,
                               dxc + (size_t)c * (size_t)P + (size_t)p);
    }
}
#endif

/* 1x1, stride 1, no padding: dx[n, c, p] = sum over the group's o (ascending) of dz[n, o, p] * W[o, c], computed
 * straight into dx (only a depthwise conv runs in place), tile by tile.  The weight's trained columns and its
 * frozen ones are each contiguous within a row, so tiles stay within one part; at the end of a part (or of the
 * positions) the last full tile overlaps the one before and computes some elements again, the same values. */
static void grad_input_pointwise(const tte_dims *w_dims, const tte_weights_s8 *w, int32_t groups, const float *dz,
                                 const tte_dims *in_dims, float *dx) {
    const int32_t C = in_dims->c, P = in_dims->h * in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, OG = O / groups;
    const tte_split_weights *sw = &w->data;
    for (int32_t n = 0; n < in_dims->n; n++) {
        for (int32_t g = 0; g < groups; g++) {
            const int32_t o0 = g * OG, o1 = o0 + OG;
            const float *dzg = dz + ((size_t)n * (size_t)O + (size_t)o0) * (size_t)P;
            for (int32_t part = 0; part < 2; part++) {
                /* columns [lo, hi) of the group; W[o0, lo] at base, rows ldw apart */
                const int32_t lo = part ? sw->channels : 0, hi = part ? CG : sw->channels, ldw = hi - lo;
                if (ldw <= 0) continue;
                const int8_t *base = (part ? sw->frozen : sw->trained) + (size_t)o0 * (size_t)ldw;
#if defined(TTE_GI_ARM)
                grad_input_pw_part(o0, o1, base, ldw, w, dzg, P, ldw,
                                   dx + ((size_t)n * (size_t)C + (size_t)(g * CG + lo)) * (size_t)P);
#else
                for (int32_t c = lo; c < hi; c += TTE_PW_TILE_C) {
                    const int32_t cl = hi - c >= TTE_PW_TILE_C || ldw < TTE_PW_TILE_C ? c : hi - TTE_PW_TILE_C;
                    const int32_t nc = hi - cl < TTE_PW_TILE_C ? hi - cl : TTE_PW_TILE_C;
                    float *dxc = dx + ((size_t)n * (size_t)C + (size_t)(g * CG + cl)) * (size_t)P;
                    for (int32_t p = 0; p < P; p += TTE_PW_TILE_P) {
                        if (P >= TTE_PW_TILE_P && nc == TTE_PW_TILE_C) {
                            const int32_t q = P - p >= TTE_PW_TILE_P ? p : P - TTE_PW_TILE_P;
                            grad_input_pw_tile(o0, o1, base + (cl - lo), ldw, w, dzg + q, P, dxc + q);
                        } else {
                            const int32_t np = P - p < TTE_PW_TILE_P ? P - p : TTE_PW_TILE_P;
                            grad_input_pw_edge(o0, o1, base + (cl - lo), ldw, w, dzg + p, P, nc, np, dxc + p);
                        }
                    }
                }
#endif
            }
        }
    }
}

/* Depthwise, kernels up to TTE_DW_MAX_TAPS x TTE_DW_MAX_TAPS: dx[c, h, w] = sum over taps i, j (ascending) of
 * dz[c, ho, wo] * W[c, i, j] where ho * sh - pad_top + i = h and wo * sw - pad_left + j = w, computed for
 * TTE_DW_ROWS rows h x TTE_DW_LANES neighbouring columns w at a time, one element per lane (rows side by side keep
 * several additions in flight).  For each tap row i, the dz values a row's lanes read for all taps j are gathered
 * into a window; where tap (i, j) does not reach an element, its lane reads a zero, and adding 0 * W (W finite)
 * changes no sum: a sum that starts at +0 is never -0, and +-0 added to anything else leaves it as it is.  So
 * every element still adds the terms of the taps that reach it in the reference's order. */
#define TTE_DW_MAX_TAPS 7
#if defined(__arm__)
#define TTE_DW_ROWS 2
#define TTE_DW_LANES 4
#else
#define TTE_DW_ROWS 4
#define TTE_DW_LANES 8
#endif
#define TTE_DW_WINDOW (TTE_DW_LANES + TTE_DW_MAX_TAPS - 1)

/* t / s when s divides t, else -1 (t >= 0; the common stride 1 without a division). */
static inline int32_t exact_quotient(int32_t t, int32_t s) {
    if (s == 1) return t;
    return t % s ? -1 : t / s;
}

/* Channel c's kk depthwise weights in real units: wr[t] = (W[c, t] - z_w) * s_w[c]. */
static inline void dw_weights_f32(const tte_weights_s8 *w, int32_t c, int32_t kk, float *wr) {
    const int8_t *wc = tte_weight_row(&w->data, 1, c, 0, 1, kk);
    const int32_t wz = w->zero_points ? w->zero_points[c] : 0;
    for (int32_t t = 0; t < kk; t++) wr[t] = (float)((int32_t)wc[t] - wz) * w->scales[c];
}

#if defined(TTE_GI_ARM)
/* 3x3 on Arm, planes of rows up to TTE_GI3_ROW - 7 wide (stride 2: tte_gi_ring_row below): the dz rows a pair of
 * dx rows reads (four: h0 + pt - 2 .. h0 + pt + 1) sit in a ring of zero-padded rows, ring[d % 4][2 + wo] =
 * dz[d, wo], zeros around and for rows outside the plane, so that no tap is checked: dx[h, w] = sum over i, j
 * (ascending) of ring[h + pt - i][w + pl - j + 2] * W[i, j], a tap that misses the plane adding 0 * W (which
 * changes no sum, as above).  tte_gi_dw3_rows computes 2 rows x 4 columns at a time: per tap row and dx row, one
 * VLDM of the six dz values its four columns read, then VMLA lane by lane.  Each pair of dx rows is written once its
 * dz rows are in the ring and later pairs read only later dz rows (or ring copies), so dx may be dz (in place), with
 * no plane in scratch. */
#define TTE_GI3_ROW 36
static const float tte_gi3_zeros[8];

/* out0[q], out1[q] (q < 4 groups) = the sums of dx rows h0, h0 + 1 at 4 groups of 4 columns (groups >= 1): row r's
 * tap row i reads the six floats at p[3 r + i] + 4 g for group g (window k = lane l + 2 - tap j); wr: the 9
 * weights.  The pointers advance in the loop, the weights stay in s8-s16. */
TTE_ARM_NOINLINE void tte_gi_dw3_rows(const float *const p[6], const float *wr, float *out0, float *out1,
                                      int32_t groups) {
#define TTE_GI3_ROWTAP(P, A0, A1, A2, A3, W0, W1, W2)                                                                \
    "vldmia " P "!, {s17-s22}\n\t" /* then 2 floats back: the next group's window starts 4 floats on */            \
    "vmla.f32 " A0 ", s19, " W0 "\n\t"                                                                             \
    "vmla.f32 " A1 ", s20, " W0 "\n\t"                                                                             \
    "vmla.f32 " A2 ", s21, " W0 "\n\t"                                                                             \
    "vmla.f32 " A3 ", s22, " W0 "\n\t"                                                                             \
    "vmla.f32 " A0 ", s18, " W1 "\n\t"                                                                             \
    "vmla.f32 " A1 ", s19, " W1 "\n\t"                                                                             \
    "vmla.f32 " A2 ", s20, " W1 "\n\t"                                                                             \
    "vmla.f32 " A3 ", s21, " W1 "\n\t"                                                                             \
    "vmla.f32 " A0 ", s17, " W2 "\n\t"                                                                             \
    "vmla.f32 " A1 ", s18, " W2 "\n\t"                                                                             \
    "vmla.f32 " A2 ", s19, " W2 "\n\t"                                                                             \
    "vmla.f32 " A3 ", s20, " W2 "\n\t"                                                                             \
    "sub " P ", " P ", #8\n\t"
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4], *p5 = p[5];
    const float *end = out0 + 4 * groups;
    __asm__ volatile("vldmia %[wr], {s8-s16}\n\t"
                     "1:\n\t"
                     "vldmia %[z], {s0-s7}\n\t"
                     TTE_GI3_ROWTAP("%[p0]", "s0", "s1", "s2", "s3", "s8", "s9", "s10")
                     TTE_GI3_ROWTAP("%[p3]", "s4", "s5", "s6", "s7", "s8", "s9", "s10")
                     TTE_GI3_ROWTAP("%[p1]", "s0", "s1", "s2", "s3", "s11", "s12", "s13")
                     TTE_GI3_ROWTAP("%[p4]", "s4", "s5", "s6", "s7", "s11", "s12", "s13")
                     TTE_GI3_ROWTAP("%[p2]", "s0", "s1", "s2", "s3", "s14", "s15", "s16")
                     TTE_GI3_ROWTAP("%[p5]", "s4", "s5", "s6", "s7", "s14", "s15", "s16")
                     "vstmia %[o0]!, {s0-s3}\n\t"
                     "vstmia %[o1]!, {s4-s7}\n\t"
                     "cmp %[o0], %[end]\n\t"
                     "bne 1b"
                     : [p0] "+&r"(p0), [p1] "+&r"(p1), [p2] "+&r"(p2), [p3] "+&r"(p3), [p4] "+&r"(p4), [p5] "+&r"(p5),
                       [o0] "+&r"(out0), [o1] "+&r"(out1)
                     : [z] "r"(tte_gi3_zeros), [wr] "r"(wr), [end] "r"(end)
                     : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
                       "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22");
#undef TTE_GI3_ROWTAP
}

/* Ring row d of dz at stride s, zero-stuffed: row[q] = dz[d / s, q / s] where s divides d and q, else 0, for
 * q < (WO - 1) s + 1.  At stride 2 a dx element's taps are those that land on dz positions: the stride-1 sum over
 * the zero-stuffed plane adds the same terms in the same order, and zeros (0 * W) that change no sum. */
static inline void tte_gi_ring_row(float *row, const float *dz, int32_t d, int32_t s, int32_t HO, int32_t WO) {
    if (d < 0 || d % s != 0 || d / s >= HO) {
        for (int32_t q = 0; q < (WO - 1) * s + 1; q++) row[q] = 0.0f;
        return;
    }
    const float *src = dz + (d / s) * WO;
    if (s == 1) {
        for (int32_t q = 0; q < WO; q++) row[q] = src[q];
        return;
    }
    for (int32_t q = 0; q < WO; q++) {
        row[2 * q] = src[q];
        if (q + 1 < WO) row[2 * q + 1] = 0.0f;
    }
}

/* The C planes of one sample through the 3 x 3 ring at stride st (dz HO x WO, dx H x W, plane after plane). */
static void grad_input_dw3_ring(const tte_conv_geometry *geo, const tte_weights_s8 *w, int32_t C, const float *dz,
                              int32_t HO, int32_t WO, int32_t st, float *dx, int32_t H, int32_t W) {
    float ring[4][TTE_GI3_ROW], out[2][4], wr[9];
    const int32_t pt = geo->pad_top, pl = geo->pad_left;
    memset(ring, 0, sizeof ring); /* only columns 2 .. (WO - 1) st + 2 of a row are written below: the rest stays 0 */
    for (int32_t c = 0; c < C; c++, dz += HO * WO, dx += H * W) {
        dw_weights_f32(w, c, 9, wr);
        for (int32_t h0 = 0; h0 < H; h0 += 2) {
            for (int32_t d = h0 == 0 ? pt - 2 : h0 + pt; d <= h0 + pt + 1; d++) /* the dz rows new to the ring */
                tte_gi_ring_row(ring[(d + 4) & 3] + 2, dz, d, st, HO, WO);
            const float *p[6];
            for (int32_t r = 0; r < 2; r++)
                for (int32_t i = 0; i < 3; i++) p[3 * r + i] = ring[(h0 + r + pt - i + 4) & 3] + pl;
            float *d0 = dx + h0 * W, *d1 = d0 + W;
            const int32_t whole = h0 + 1 < H ? W / 4 : 0; /* groups of 4 columns written in place */
            if (whole > 0) tte_gi_dw3_rows(p, wr, d0, d1, whole);
            for (int32_t w0 = 4 * whole; w0 < W; w0 += 4) { /* the last columns, or the last row of an odd plane */
                const float *q[6];
                const int32_t lanes = W - w0 < 4 ? W - w0 : 4;
                for (int32_t k = 0; k < 6; k++) q[k] = p[k] + w0;
                tte_gi_dw3_rows(q, wr, out[0], out[1], 1);
                for (int32_t l = 0; l < lanes; l++) d0[w0 + l] = out[0][l];
                if (h0 + 1 < H)
                    for (int32_t l = 0; l < lanes; l++) d1[w0 + l] = out[1][l];
            }
        }
    }
}
#endif

/* The same ring for K x K kernels (K = 5, 7), strides 1 and 2, in C: K + 1 rows of TTE_GIK_ROW floats (dz rows
 * h0 + pt - K + 1 .. h0 + pt + 1 for dx rows h0, h0 + 1; ring[.][K - 1 + wo] = dz[., wo]), 2 rows x 4 columns at a
 * time, the loops over a tap row unrolled so that the window, the sums and the weight stay in registers (VMLA).
 * The order of each element's terms, and the in-place argument, are the 3 x 3 ring's. */
#if defined(TTE_GI_ARM)
#define TTE_GIK_ROW 32
#define TTE_GI_DWK(K)                                                                                                 \
    static void grad_input_dw##K##_ring(const tte_conv_geometry *geo, const tte_weights_s8 *w, int32_t C,            \
                                      const float *dz, int32_t HO, int32_t WO, int32_t st, float *dx, int32_t H,     \
                                      int32_t W) {                                                                    \
        float ring[K + 1][TTE_GIK_ROW], wr[K * K];                                                                    \
        const int32_t pt = geo->pad_top, pl = geo->pad_left;                                                          \
        memset(ring, 0, sizeof ring); /* only columns K - 1 .. K + (WO - 1) st - 1 are written below */             \
        for (int32_t c = 0; c < C; c++, dz += HO * WO, dx += H * W) {                                                 \
            dw_weights_f32(w, c, K * K, wr);                                                                          \
            for (int32_t h0 = 0; h0 < H; h0 += 2) {                                                                   \
                for (int32_t d = h0 == 0 ? pt - K + 1 : h0 + pt; d <= h0 + pt + 1; d++)                               \
                    tte_gi_ring_row(ring[(d + 2 * (K + 1)) % (K + 1)] + K - 1, dz, d, st, HO, WO);                   \
                const float *rows[K + 1]; /* rows[e]: dz row h0 + pt - K + 1 + e */                                    \
                for (int32_t e = 0; e <= K; e++) rows[e] = ring[(h0 + pt - K + 1 + e + 2 * (K + 1)) % (K + 1)] + pl;  \
                for (int32_t w0 = 0; w0 < W; w0 += 4) {                                                               \
                    float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};                           \
                    for (int32_t i = 0; i < K; i++) {                                                                 \
                        TTE_ARM_UNROLL                                                                                \
                        for (int32_t r = 0; r < 2; r++) {                                                             \
                            const float *p = rows[r - i + K - 1] + w0;                                                \
                            float v[K + 3];                                                                           \
                            TTE_ARM_UNROLL                                                                            \
                            for (int32_t k = 0; k < K + 3; k++) v[k] = p[k];                                          \
                            TTE_ARM_UNROLL                                                                            \
                            for (int32_t j = 0; j < K; j++) {                                                         \
                                const float wij = wr[i * K + j];                                                      \
                                TTE_ARM_UNROLL                                                                        \
                                for (int32_t l = 0; l < 4; l++)                                                       \
                                    acc[r][l] = tte_mla_f32(acc[r][l], v[l + K - 1 - j], wij);                        \
                            }                                                                                         \
                        }                                                                                             \
                    }                                                                                                 \
                    const int32_t lanes = W - w0 < 4 ? W - w0 : 4;                                                    \
                    for (int32_t l = 0; l < lanes; l++) dx[h0 * W + w0 + l] = acc[0][l];                              \
                    if (h0 + 1 < H)                                                                                   \
                        for (int32_t l = 0; l < lanes; l++) dx[(h0 + 1) * W + w0 + l] = acc[1][l];                    \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
    }
TTE_GI_DWK(5)
TTE_GI_DWK(7)
#undef TTE_GI_DWK
#endif

static void grad_input_depthwise(const tte_conv_geometry *geo, const tte_dims *w_dims, const tte_weights_s8 *w,
                                 const tte_dims *dz_dims, const float *dz, const tte_dims *in_dims, float *dx,
                                 float *scratch) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = dz_dims->h, WO = dz_dims->w, sh = geo->stride_h, sw = geo->stride_w;
    static const float zeros[TTE_DW_WINDOW];
    for (int32_t n = 0; n < in_dims->n; n++) {
#if defined(TTE_GI_ARM)
        /* the ring path writes a plane's dx rows while later dz rows are still to be read: in place only where dx
         * and dz are the same planes (same address, same size, stride 1), else into memory dz does not share */
        const float *dzn = dz + (size_t)n * (size_t)C * (size_t)HO * (size_t)WO;
        float *dxn = dx + (size_t)n * (size_t)C * (size_t)H * (size_t)W;
        const uintptr_t a0 = (uintptr_t)dzn, a1 = (uintptr_t)(dzn + (size_t)C * (size_t)HO * (size_t)WO);
        const uintptr_t b0 = (uintptr_t)dxn, b1 = (uintptr_t)(dxn + (size_t)C * (size_t)H * (size_t)W);
        /* strides 1 and 2 (zero-stuffed rows: tte_gi_ring_row); WU: a zero-stuffed dz row's length */
        const int32_t st = sh, WU = (WO - 1) * st + 1;
        const int ring = sh == sw && (sh == 1 || sh == 2) && geo->pad_top >= 0 && geo->pad_left >= 0 &&
                         ((a0 == b0 && sh == 1 && H == HO && W == WO) || b1 <= a0 || a1 <= b0);
        if (ring && KH == 3 && KW == 3 && geo->pad_top <= 2 && geo->pad_left <= 2 &&
            W + geo->pad_left + 5 <= TTE_GI3_ROW && WU + 4 <= TTE_GI3_ROW) {
            grad_input_dw3_ring(geo, w, C, dzn, HO, WO, st, dxn, H, W);
            continue;
        }
        const int32_t K = KH; /* 5 x 5 and 7 x 7 through their ring (TTE_GI_DWK) */
        if (ring && (K == 5 || K == 7) && KW == K && geo->pad_top < K && geo->pad_left < K &&
            W + geo->pad_left + K + 3 <= TTE_GIK_ROW && WU + K - 1 <= TTE_GIK_ROW) {
            if (K == 5) grad_input_dw5_ring(geo, w, C, dzn, HO, WO, st, dxn, H, W);
            else grad_input_dw7_ring(geo, w, C, dzn, HO, WO, st, dxn, H, W);
            continue;
        }
#endif
        for (int32_t c = 0; c < C; c++) {
            const float *dzc = dz + ((size_t)n * (size_t)C + (size_t)c) * (size_t)HO * (size_t)WO;
            float wr[TTE_DW_MAX_TAPS * TTE_DW_MAX_TAPS];
            dw_weights_f32(w, c, KH * KW, wr);
            for (int32_t w0 = 0; w0 < W; w0 += TTE_DW_LANES) {
                /* lane l, tap j reads dz column u = w0 + l + pad_left - j, at win[l + KW - 1 - j]: columns u from
                 * base on, where u = wo * sw for the dz columns wo in [wo0, wo1); the others stay zero */
                const int32_t base = w0 + geo->pad_left - (KW - 1), top = base + TTE_DW_LANES + KW - 2;
                int32_t wo0 = base <= 0 ? 0 : (base + sw - 1) / sw, wo1 = top < 0 ? 0 : top / sw + 1;
                if (wo1 > WO) wo1 = WO;
                const int32_t lanes = W - w0 < TTE_DW_LANES ? W - w0 : TTE_DW_LANES;
                float win[TTE_DW_ROWS][TTE_DW_WINDOW];
                for (int32_t r = 0; r < TTE_DW_ROWS; r++)
                    for (int32_t q = 0; q < TTE_DW_WINDOW; q++) win[r][q] = 0.0f;
                for (int32_t h0 = 0; h0 < H; h0 += TTE_DW_ROWS) {
                    float acc[TTE_DW_ROWS][TTE_DW_LANES];
                    TTE_ARM_UNROLL
                    for (int32_t r = 0; r < TTE_DW_ROWS; r++) {
                        TTE_ARM_UNROLL
                        for (int32_t l = 0; l < TTE_DW_LANES; l++) acc[r][l] = 0.0f;
                    }
                    for (int32_t i = 0; i < KH; i++) {
                        const float *in[TTE_DW_ROWS]; /* row r's window for tap row i: zeros where i misses h */
                        for (int32_t r = 0; r < TTE_DW_ROWS; r++) {
                            const int32_t t = h0 + r + geo->pad_top - i;
                            const int32_t ho = h0 + r < H && t >= 0 ? exact_quotient(t, sh) : -1;
                            in[r] = zeros + KW - 1;
                            if (ho < 0 || ho >= HO) continue;
                            for (int32_t wo = wo0; wo < wo1; wo++) win[r][wo * sw - base] = dzc[ho * WO + wo];
                            in[r] = win[r] + KW - 1;
                        }
                        for (int32_t j = 0; j < KW; j++) {
                            const float wij = wr[i * KW + j];
                            TTE_ARM_UNROLL
                            for (int32_t r = 0; r < TTE_DW_ROWS; r++) {
                                TTE_ARM_UNROLL
                                for (int32_t l = 0; l < TTE_DW_LANES; l++)
                                    acc[r][l] = tte_mla_f32(acc[r][l], in[r][l - j], wij);
                            }
                        }
                    }
                    for (int32_t r = 0; r < TTE_DW_ROWS && h0 + r < H; r++) {
                        float out[TTE_DW_LANES]; /* (acc itself stays in registers) */
                        TTE_ARM_UNROLL
                        for (int32_t l = 0; l < TTE_DW_LANES; l++) out[l] = acc[r][l];
                        for (int32_t l = 0; l < lanes; l++) scratch[(h0 + r) * W + w0 + l] = out[l];
                    }
                }
            }
            memcpy(dx + ((size_t)n * (size_t)C + (size_t)c) * (size_t)H * (size_t)W, scratch,
                   sizeof(float) * (size_t)H * (size_t)W);
        }
    }
}

/* dx[n, c, h, w] = sum of dz[n, o, ho, wo] * W[o, c, i, j] over the output channels o of c's group
 * (ascending), then taps i, j (ascending), where ho * stride_h - pad_top + i = h (same for w).  Each
 * input plane is accumulated in that order into `scratch` (scattering every (o, i, j) term, which adds
 * to each element at most once) and then stored, so a depthwise conv may run in place (dx == dz). */
tte_status tte_conv_grad_input_f32(const tte_conv_geometry *geo, const tte_dims *w_dims, const tte_weights_s8 *w,
                                   const tte_dims *dz_dims, const float *dz, const tte_dims *in_dims, float *dx,
                                   float *scratch) {
    const int32_t C = in_dims->c, H = in_dims->h, W = in_dims->w;
    const int32_t O = w_dims->n, CG = w_dims->c, KH = w_dims->h, KW = w_dims->w;
    const int32_t HO = dz_dims->h, WO = dz_dims->w, OG = O / geo->groups;
    const int32_t sh = geo->stride_h, sw = geo->stride_w;
    if (geo->groups < 1 || C != CG * geo->groups || O % geo->groups || dz_dims->c != O) return TTE_ERROR_ARGUMENT;
    const int32_t depthwise = CG == 1 && geo->groups == O;
    if (KH == 1 && KW == 1 && sh == 1 && sw == 1 && geo->pad_top == 0 && geo->pad_left == 0 && HO == H && WO == W &&
        !depthwise) {
        grad_input_pointwise(w_dims, w, geo->groups, dz, in_dims, dx);
        return TTE_OK;
    }
    if (depthwise && KH <= TTE_DW_MAX_TAPS && KW <= TTE_DW_MAX_TAPS) {
        grad_input_depthwise(geo, w_dims, w, dz_dims, dz, in_dims, dx, scratch);
        return TTE_OK;
    }
    for (int32_t n = 0; n < in_dims->n; n++) {
        for (int32_t c = 0; c < C; c++) {
            const int32_t g = c / CG, cl = c % CG;
            memset(scratch, 0, sizeof(float) * (size_t)H * (size_t)W);
            for (int32_t o = g * OG; o < (g + 1) * OG; o++) {
                const float *dzo = dz + ((size_t)n * (size_t)O + (size_t)o) * (size_t)HO * (size_t)WO;
                const int8_t *wo = tte_weight_row(&w->data, depthwise, o, cl, CG, KH * KW);
                const int32_t wz = w->zero_points ? w->zero_points[o] : 0;
                for (int32_t i = 0; i < KH; i++) {
                    int32_t ho0, ho1;
                    tte_out_range(i, sh, geo->pad_top, H, HO, &ho0, &ho1);
                    for (int32_t j = 0; j < KW; j++) {
                        int32_t wo0, wo1;
                        tte_out_range(j, sw, geo->pad_left, W, WO, &wo0, &wo1);
                        const float wr = (float)((int32_t)wo[i * KW + j] - wz) * w->scales[o];
                        for (int32_t ho = ho0; ho < ho1; ho++) {
                            float *row = scratch + (ho * sh - geo->pad_top + i) * W - geo->pad_left + j;
                            const float *dzr = dzo + ho * WO;
                            for (int32_t x = wo0; x < wo1; x++) row[x * sw] += dzr[x] * wr;
                        }
                    }
                }
            }
            memcpy(dx + ((size_t)n * (size_t)C + (size_t)c) * (size_t)H * (size_t)W, scratch,
                   sizeof(float) * (size_t)H * (size_t)W);
        }
    }
    return TTE_OK;
}
