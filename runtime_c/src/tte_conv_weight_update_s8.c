#include "tte_grad_core.h"
#include "tte_sgd_core.h"

int32_t tte_conv_weight_update_get_buffer_size(const tte_dims *w_dims, int32_t channels, int32_t depthwise) {
    return (int32_t)sizeof(float) * (depthwise ? 1 : channels) * w_dims->h * w_dims->w;
}

#if defined(__arm__) && defined(TTE_ARM_ASM) && defined(__ARM_FP) && (__ARM_FP & 4)
/* A pointwise conv's gradient on a Cortex-M FPU, one sample: the trained input channels 3 at a time converted once
 * to real units into scratch, position-major (xf[3 q + j] = x[c + j, q] in real units), then each block of 4 output
 * channels x those 3 by tte_wu_tile_4x3, 4 positions per step: one VLDM of their 12 x values, then per output
 * channel one VLDM of its 4 dz values and 12 VMLA (the product rounded, then added), each element's terms in
 * ascending positions as in tte_pw_weight_grad_tile. */
#define TTE_WU_ARM 1
TTE_ARM_NOINLINE void tte_wu_tile_4x3(const float *dz, int32_t P, const float *xf, int32_t chunks, float acc[12]) {
#define TTE_WU_ROW(D, A0, A1, A2)                                                                                     \
    "vldmia " D "!, {s12-s15}\n\t"                                                                                 \
    "vmla.f32 " A0 ", s12, s0\n\t"                                                                                 \
    "vmla.f32 " A1 ", s12, s1\n\t"                                                                                 \
    "vmla.f32 " A2 ", s12, s2\n\t"                                                                                 \
    "vmla.f32 " A0 ", s13, s3\n\t"                                                                                 \
    "vmla.f32 " A1 ", s13, s4\n\t"                                                                                 \
    "vmla.f32 " A2 ", s13, s5\n\t"                                                                                 \
    "vmla.f32 " A0 ", s14, s6\n\t"                                                                                 \
    "vmla.f32 " A1 ", s14, s7\n\t"                                                                                 \
    "vmla.f32 " A2 ", s14, s8\n\t"                                                                                 \
    "vmla.f32 " A0 ", s15, s9\n\t"                                                                                 \
    "vmla.f32 " A1 ", s15, s10\n\t"                                                                                \
    "vmla.f32 " A2 ", s15, s11\n\t"
    const float *d0 = dz, *d1 = dz + P, *d2 = dz + 2 * P, *d3 = dz + 3 * P, *end = xf + 12 * chunks;
    __asm__ volatile("vldmia %[acc], {s20-s31}\n\t"
                     "1:\n\t"
                     "vldmia %[xf]!, {s0-s11}\n\t" TTE_WU_ROW("%[d0]", "s20", "s21", "s22")
                     TTE_WU_ROW("%[d1]", "s23", "s24", "s25") TTE_WU_ROW("%[d2]", "s26", "s27", "s28")
                     TTE_WU_ROW("%[d3]", "s29", "s30", "s31")
                     "cmp %[xf], %[end]\n\t"
                     "bne 1b\n\t"
                     "vstmia %[acc], {s20-s31}"
                     : [d0] "+&r"(d0), [d1] "+&r"(d1), [d2] "+&r"(d2), [d3] "+&r"(d3), [xf] "+&r"(xf)
                     : [end] "r"(end), [acc] "r"(acc)
                     : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
                       "s13", "s14", "s15", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30",
                       "s31");
#undef TTE_WU_ROW
}

/* The pointwise update with tte_wu_tile_4x3 (rows >= 4, cols >= 3, one sample, room for 3 converted channels): a
 * block at the end of the rows or columns is the whole tile that ends there, only its new elements updated. */
static void pointwise_update_arm(const tte_dims *x_dims, const tte_saved_s8 *x, const float *dz, int32_t rows,
                                 int32_t cols, const float *factors, const tte_sgd_params *sg, int8_t *weights,
                                 float *xf) {
    const int32_t P = x_dims->h * x_dims->w, zx = x->zero_point;
    const float sx = x->scale;
    for (int32_t c = 0; c < cols; c += 3) {
        const int32_t tc = c + 3 <= cols ? c : cols - 3;
        for (int32_t j = 0; j < 3; j++) {
            const int8_t *xc = x->data + (size_t)(tc + j) * (size_t)P;
            for (int32_t q = 0; q < P; q++) xf[3 * q + j] = (float)((int32_t)xc[q] - zx) * sx;
        }
        for (int32_t o = 0; o < rows; o += 4) {
            const int32_t to = o + 4 <= rows ? o : rows - 4;
            const float *dzo = dz + (size_t)to * (size_t)P;
            float acc[12] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            if (P >= 4) tte_wu_tile_4x3(dzo, P, xf, P / 4, acc);
            for (int32_t q = P & ~3; q < P; q++) /* the positions past the last 4 */
                for (int32_t i = 0; i < 4; i++)
                    for (int32_t j = 0; j < 3; j++)
                        acc[3 * i + j] = tte_mla_f32(acc[3 * i + j], dzo[(size_t)i * (size_t)P + (size_t)q],
                                                     xf[3 * q + j]);
            const int32_t i0 = o - to, j0 = c - tc, index = (to + i0) * cols + tc + j0; /* the block's new part */
            tte_sgd_block_s8(sg, weights + index, cols, acc + 3 * i0 + j0, 3, factors + to + i0, 4 - i0, 3 - j0,
                             (uint32_t)index);
        }
    }
}
#endif

/* For each output channel o (depthwise: each of the first `channels` channels): the gradient of its
 * trained slice into scratch (tte_grad_core.h), then SGD on those values: no gradient buffer.  A pointwise conv's
 * gradient comes a block of output x input channels at a time (tte_pw_weight_grad_block), each block updated as
 * soon as it is known (every value's update depends on that value alone). */
tte_status tte_conv_weight_update_s8(const tte_conv_geometry *geo, int32_t depthwise, int32_t channels,
                                     const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                     const float *dz, const float *factors, const tte_sgd_params *sgd,
                                     const tte_dims *w_dims, int8_t *weights, float *scratch, int32_t scratch_bytes) {
    const int32_t KK = w_dims->h * w_dims->w;
    const int32_t rows = depthwise ? channels : w_dims->n, cols = depthwise ? 1 : channels;
    const tte_sgd_params sg = *sgd; /* a local copy: the int8 stores below cannot change it, so it stays in registers */
#if defined(TTE_WU_ARM)
    if (tte_pointwise_weight_grad(geo, depthwise, x_dims, dz_dims, w_dims) && x_dims->n == 1 && rows >= 4 &&
        cols >= 3 && (int64_t)scratch_bytes >= (int64_t)sizeof(float) * 3 * x_dims->h * x_dims->w) {
        pointwise_update_arm(x_dims, x, dz, rows, cols, factors, &sg, weights, scratch);
        return TTE_OK;
    }
#else
    (void)scratch_bytes;
#endif
    if (tte_pointwise_weight_grad(geo, depthwise, x_dims, dz_dims, w_dims)) {
        for (int32_t o = 0; o < rows; o += TTE_WG_TILE_O) {
            const int32_t no = rows - o < TTE_WG_TILE_O ? rows - o : TTE_WG_TILE_O;
            for (int32_t c = 0; c < cols; c += TTE_WG_TILE_C) {
                const int32_t nc = cols - c < TTE_WG_TILE_C ? cols - c : TTE_WG_TILE_C;
                float g[TTE_WG_TILE_O][TTE_WG_TILE_C];
                tte_pw_weight_grad_block(x_dims, x, dz_dims, dz, rows, cols, o, no, c, nc, g);
                for (int32_t i = 0; i < no; i++) {
                    for (int32_t j = 0; j < nc; j++) {
                        const int32_t index = (o + i) * cols + c + j;
                        weights[index] = (int8_t)tte_sgd_value(&sg, weights[index], g[i][j], factors[o + i],
                                                               (uint32_t)index);
                    }
                }
            }
        }
        return TTE_OK;
    }
    for (int32_t o = 0; o < rows; o++) {
        tte_conv_weight_grad_row(geo, depthwise, cols, o, x_dims, x, dz_dims, dz, w_dims, scratch);
        for (int32_t cl = 0; cl < cols; cl++) {
            for (int32_t t = 0; t < KK; t++) {
                const uint32_t index = (uint32_t)((o * cols + cl) * KK + t);
                /* the trained slice's layout */
                int8_t *p = weights + ((size_t)o * (size_t)cols + (size_t)cl) * (size_t)KK + t;
                *p = (int8_t)tte_sgd_value(&sg, *p, scratch[cl * KK + t], factors[o], index);
            }
        }
    }
    return TTE_OK;
}
