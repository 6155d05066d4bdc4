/*
 * tte runtime: C99 kernels for int8 training loops on microcontrollers.
 *
 * One public function per file, named tte_<op>_<variant>_<dtype>, in the manner of CMSIS-NN: parameter
 * structs, const inputs first and the output last, a status return, no malloc.  Scratch a kernel needs
 * is passed in; tte_<op>_get_buffer_size() says how much.
 *
 * Layouts are NCHW (batch, channels, height, width), row-major.  Weights are OIHW, int8, quantized per
 * output channel; biases int32 in units of input scale x weight scale.  Integer semantics are exactly
 * those of tte/reference/semantics.py: exact int32 accumulation, the bias added with int32 saturation,
 * v = (float)acc * M in float32, q = clamp(round_half_even(v) + zero_point, qmin, qmax).  Build with
 * -ffp-contract=off so that no fused multiply-add changes a float32 result.
 *
 * Requantizing kernels take a `mask` (NULL when not needed): one bit per output element, set where the
 * rounded value landed inside [qmin, qmax], which is where the straight-through gradient passes.
 */
#ifndef TTE_RUNTIME_H
#define TTE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TTE_OK = 0, TTE_ERROR_ARGUMENT = -1, TTE_ERROR_SIZE = -2 } tte_status;

typedef struct {
    int32_t n, c, h, w;
} tte_dims;

/* Requantization of a conv / gemm output: per-channel multipliers M[c] = s_x * s_w[c] / s_y. */
typedef struct {
    int32_t input_zero_point;   /* z_x, subtracted from every input value (padding reads as z_x) */
    int32_t output_zero_point;  /* z_y */
    int32_t qmin, qmax;         /* int8 clamp, narrowed by folded activations */
} tte_quant_params;

typedef struct {
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t groups;
} tte_conv_geometry;

typedef struct {
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
} tte_pool_geometry;

/* conv, any groups (regular, grouped, pointwise).  weight_zero_points may be NULL (all zero). */
tte_status tte_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                       const int8_t *input, const tte_dims *w_dims, const int8_t *weights,
                       const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                       const tte_dims *out_dims, int8_t *output, uint8_t *mask);

/* depthwise conv (one input and one output channel per group).  May run in place (output == input):
 * each output channel is computed into scratch (tte_conv_dw_s8_get_buffer_size bytes), then copied to
 * its place, which never overlaps an input channel still to be read. */
int32_t tte_conv_dw_s8_get_buffer_size(const tte_dims *out_dims);
tte_status tte_conv_dw_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                          const int8_t *input, const tte_dims *w_dims, const int8_t *weights,
                          const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                          const tte_dims *out_dims, int8_t *output, uint8_t *mask, int8_t *scratch);

/* 1x1 conv feeding a depthwise conv, one expanded channel plane at a time (scratch: one plane). */
int32_t tte_conv_pw_dw_s8_get_buffer_size(const tte_dims *in_dims);
tte_status tte_conv_pw_dw_s8(const tte_quant_params *q1, const int8_t *w1, const int32_t *w1_zero_points,
                             const int32_t *b1, const float *m1, const tte_conv_geometry *geo2,
                             const tte_quant_params *q2, const tte_dims *w2_dims, const int8_t *w2,
                             const int32_t *w2_zero_points, const int32_t *b2, const float *m2,
                             const tte_dims *in_dims, const int8_t *input, const tte_dims *out_dims,
                             int8_t *output, int8_t *scratch);

/* fully connected: input [n, k], weights [m, k], output [n, m]. */
tte_status tte_gemm_s8(const tte_quant_params *q, int32_t n, int32_t k, int32_t m, const int8_t *input,
                       const int8_t *weights, const int32_t *weight_zero_points, const int32_t *bias,
                       const float *multipliers, int8_t *output, uint8_t *mask);

/* elementwise add with rescaling: v = (a - za) * ma + (b - zb) * mb.  b_size < size broadcasts b along
 * the last axis (a constant bias). */
tte_status tte_add_s8(int32_t size, const int8_t *a, int32_t a_zero_point, float a_multiplier,
                      int32_t b_size, const int8_t *b, int32_t b_zero_point, float b_multiplier,
                      int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* re-express int8 values in other parameters: v = (x - zx) * m.  May run in place. */
tte_status tte_requantize_s8(int32_t size, const int8_t *input, int32_t input_zero_point, float multiplier,
                             int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* average pool; multipliers[count] = s_x / (s_y * count) for the element count of a window. */
tte_status tte_avgpool_s8(const tte_pool_geometry *geo, const tte_quant_params *q, int32_t count_include_pad,
                          const tte_dims *in_dims, const int8_t *input, const float *multipliers,
                          const tte_dims *out_dims, int8_t *output, uint8_t *mask);

tte_status tte_global_avgpool_s8(const tte_quant_params *q, float multiplier, const tte_dims *in_dims,
                                 const int8_t *input, int8_t *output, uint8_t *mask);

/* max pool; the maximum is requantized with `multiplier` (exactly 1 when parameters are equal). */
tte_status tte_maxpool_s8(const tte_pool_geometry *geo, const tte_quant_params *q, float multiplier,
                          const tte_dims *in_dims, const int8_t *input, const tte_dims *out_dims, int8_t *output, uint8_t *mask);

/* copy one concat operand into its channel range of the output, rescaled. */
tte_status tte_concat_channels_s8(const tte_dims *in_dims, const int8_t *input, int32_t input_zero_point,
                                  float multiplier, int32_t output_zero_point, int32_t qmin, int32_t qmax,
                                  int32_t out_channels, int32_t channel_offset, int8_t *output, uint8_t *mask);

/* float32 -> int8: q = clamp(round_half_even(x / scale) + zero_point). */
tte_status tte_quantize_f32(int32_t size, const float *input, float scale, int32_t zero_point, int8_t *output);

/* int8 -> float32: (q - zero_point) * scale. */
tte_status tte_dequantize_s8(int32_t size, const int8_t *input, float scale, int32_t zero_point, float *output);

#ifdef __cplusplus
}
#endif

#endif /* TTE_RUNTIME_H */
