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
 * A graph may instead use one of TFLite's integer arithmetics (tte/reference/fixedpoint.py): "tflite", bit-exact
 * with TFLite's reference kernels, or "tflite-micro", bit-exact with TFLite Micro (and CMSIS-NN).  Conv and max
 * pool (and, in "tflite-micro", fully connected) then take Q31 multipliers in tte_quant_params, and the ops whose
 * algorithm differs have kernels of their own, tte_<op>_tflite_<dtype>.
 *
 * Requantizing kernels take a `mask` (NULL when not needed): one bit per output element, set where the
 * rounded value landed inside [qmin, qmax], which is where the straight-through gradient passes.
 *
 * Speed: built for a core with the Arm DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, ...), the int8 conv,
 * depthwise, fused pointwise + depthwise and gemm kernels take SXTB16 + SMLAD loops (two 16-bit multiply-accumulates
 * per instruction, ACLE intrinsics from <arm_acle.h>) and round with VCVTR; everywhere else the portable C99 loops.
 * Both give the same integers (tests/test_kernels_dsp.py: host build against QEMU Cortex-M4 / M7 builds).  VCVTR
 * rounds as the FPSCR says: leave its rounding mode at round-to-nearest (the reset value).
 */
#ifndef TTE_RUNTIME_H
#define TTE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TTE_OK = 0, TTE_ERROR_ARGUMENT = -1, TTE_ERROR_SIZE = -2, TTE_ERROR_SOURCE = -3 } tte_status;

typedef struct {
    int32_t n, c, h, w;
} tte_dims;

/* A conv weight (OIHW int8) that may be split between SRAM and flash: its leading `channels` input
 * channels (axis 1), or for a depthwise conv its leading `channels` rows (axis 0), are the trained slice
 * at `trained` (laid out as that slice); the rest is at `frozen` (NULL when nothing is frozen).  A weight
 * that is not split has trained = the whole tensor and channels = all of them. */
typedef struct {
    const int8_t *trained;
    const int8_t *frozen;
    int32_t channels;
} tte_split_weights;

/* Requantization of a conv / gemm output: per-channel multipliers M[c] = s_x * s_w[c] / s_y.
 *
 * `multiplier` and `shift` select TFLite's integer arithmetic (tte/reference/fixedpoint.py; for a gemm, TFLite
 * Micro's): per output channel (one entry for a max pool) a Q31 multiplier and its power-of-two exponent, applied
 * with TFLite's MultiplyByQuantizedMultiplier.  NULL selects the float32 multipliers of the kernel's
 * `multipliers` argument, onnxruntime's arithmetic. */
typedef struct {
    int32_t input_zero_point;   /* z_x, subtracted from every input value (padding reads as z_x) */
    int32_t output_zero_point;  /* z_y */
    int32_t qmin, qmax;         /* int8 clamp, narrowed by folded activations */
    const int32_t *multiplier;  /* TFLite arithmetic: Q31 multipliers, or NULL */
    const int32_t *shift;       /* TFLite arithmetic: their exponents (left shift if positive) */
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

/* conv, any groups (regular, grouped, pointwise).  weight_zero_points may be NULL (all zero); multipliers may be
 * NULL when q carries TFLite's (as for the depthwise and fused kernels below).  scratch (4-byte aligned,
 * scratch_bytes long; may be NULL with 0) is optional working space: a pointwise conv uses what it is given to stage
 * its input for the Arm DSP extension's multiply-accumulates (the results never depend on it). */
tte_status tte_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                       const int8_t *input, const tte_dims *w_dims, const tte_split_weights *weights,
                       const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                       const tte_dims *out_dims, int8_t *output, uint8_t *mask, int8_t *scratch,
                       int32_t scratch_bytes);

/* depthwise conv (one input and one output channel per group).  May run in place (output == input):
 * each output channel is computed into scratch (tte_conv_dw_s8_get_buffer_size bytes: scratch_bytes at least
 * that), then copied to its place, which never overlaps an input channel still to be read.  With more scratch the
 * Arm DSP path also copies each input plane there inside its padding (no border windows). */
int32_t tte_conv_dw_s8_get_buffer_size(const tte_dims *out_dims);
tte_status tte_conv_dw_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                          const int8_t *input, const tte_dims *w_dims, const tte_split_weights *weights,
                          const int32_t *weight_zero_points, const int32_t *bias, const float *multipliers,
                          const tte_dims *out_dims, int8_t *output, uint8_t *mask, int8_t *scratch,
                          int32_t scratch_bytes);

/* 1x1 conv feeding a depthwise conv, one expanded channel plane at a time (scratch: one plane; scratch_bytes: its
 * size, which a Cortex-M uses for the plane inside its padding when it can: see the source). */
int32_t tte_conv_pw_dw_s8_get_buffer_size(const tte_dims *in_dims);
tte_status tte_conv_pw_dw_s8(const tte_quant_params *q1, const int8_t *w1, const int32_t *w1_zero_points,
                             const int32_t *b1, const float *m1, const tte_conv_geometry *geo2,
                             const tte_quant_params *q2, const tte_dims *w2_dims, const int8_t *w2,
                             const int32_t *w2_zero_points, const int32_t *b2, const float *m2,
                             const tte_dims *in_dims, const int8_t *input, const tte_dims *out_dims,
                             int8_t *output, int8_t *scratch, int32_t scratch_bytes);

/* fully connected: input [n, k], weights [m, k], output [n, m].  q->multiplier set: TFLite Micro's output stage
 * (MBQM per output channel, as a conv; `multipliers` unused). */
tte_status tte_gemm_s8(const tte_quant_params *q, int32_t n, int32_t k, int32_t m, const int8_t *input,
                       const int8_t *weights, const int32_t *weight_zero_points, const int32_t *bias,
                       const float *multipliers, int8_t *output, uint8_t *mask);

/* fully connected with TFLite's reference arithmetic: y = round(acc * multipliers[o]) in double precision, half
 * away from zero, multipliers[o] = (double)s_x * (double)s_w[o] / (double)s_y. */
tte_status tte_gemm_tflite_s8(const tte_quant_params *q, int32_t n, int32_t k, int32_t m, const int8_t *input,
                              const int8_t *weights, const int32_t *weight_zero_points, const int32_t *bias,
                              const double *multipliers, int8_t *output, uint8_t *mask);

/* elementwise add with rescaling: v = (a - za) * ma + (b - zb) * mb.  b may be a constant that broadcasts:
 * element i of a meets b[(i / b_inner) % b_size] (b_size = size, b_inner = 1: same shape; a bias along the
 * last axis: b_inner = 1; one value per channel of an NCHW tensor: b_size = C, b_inner = H * W). */
tte_status tte_add_s8(int32_t size, const int8_t *a, int32_t a_zero_point, float a_multiplier,
                      int32_t b_size, int32_t b_inner, const int8_t *b, int32_t b_zero_point, float b_multiplier,
                      int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* elementwise add with TFLite's arithmetic: inputs (q - z) * 2^20 scaled by params {m_a, n_a, m_b, n_b}, the sum
 * by {m_y, n_y} (Q31 multipliers and exponents, params[0..5]).  b broadcasts as for tte_add_s8. */
tte_status tte_add_tflite_s8(int32_t size, const int8_t *a, int32_t a_zero_point, int32_t b_size, int32_t b_inner,
                             const int8_t *b, int32_t b_zero_point, const int32_t *params, int32_t output_zero_point,
                             int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* 4-d transpose (numpy.transpose(input, perm)); in_dims in the input's storage order.  Not in place. */
tte_status tte_transpose_s8(const tte_dims *in_dims, const int32_t perm[4], const int8_t *input, int8_t *output);

/* re-express int8 values in other parameters: v = (x - zx) * m.  May run in place. */
tte_status tte_requantize_s8(int32_t size, const int8_t *input, int32_t input_zero_point, float multiplier,
                             int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* TFLite's Requantize: MBQM(x - zx, multiplier, shift) + zy.  May run in place. */
tte_status tte_requantize_tflite_s8(int32_t size, const int8_t *input, int32_t input_zero_point, int32_t multiplier,
                                    int32_t shift, int32_t output_zero_point, int32_t qmin, int32_t qmax,
                                    int8_t *output, uint8_t *mask);

/* average pool; multipliers[count] = s_x / (s_y * count) for the element count of a window. */
tte_status tte_avgpool_s8(const tte_pool_geometry *geo, const tte_quant_params *q, int32_t count_include_pad,
                          const tte_dims *in_dims, const int8_t *input, const float *multipliers,
                          const tte_dims *out_dims, int8_t *output, uint8_t *mask);

tte_status tte_global_avgpool_s8(const tte_quant_params *q, float multiplier, const tte_dims *in_dims,
                                 const int8_t *input, int8_t *output, uint8_t *mask);

/* average pool with TFLite's arithmetic: the window's raw sum over its count, rounded half away from zero, then
 * requantized with MBQM (multiplier 2^30, shift 1 when in and out parameters are equal: the identity). */
tte_status tte_avgpool_tflite_s8(const tte_pool_geometry *geo, const tte_quant_params *q, int32_t count_include_pad,
                                 const tte_dims *in_dims, const int8_t *input, int32_t multiplier, int32_t shift,
                                 const tte_dims *out_dims, int8_t *output, uint8_t *mask);

/* global average pool with TFLite's arithmetic (MEAN): MBQM(sum - zx * H * W) with 1 / (H * W) folded into the
 * multiplier. */
tte_status tte_global_avgpool_tflite_s8(const tte_quant_params *q, int32_t multiplier, int32_t shift,
                                        const tte_dims *in_dims, const int8_t *input, int8_t *output, uint8_t *mask);

/* max pool; the maximum is requantized with `multiplier` (exactly 1 when parameters are equal), or with TFLite's
 * arithmetic when q->multiplier is set (its first entry). */
tte_status tte_maxpool_s8(const tte_pool_geometry *geo, const tte_quant_params *q, float multiplier,
                          const tte_dims *in_dims, const int8_t *input, const tte_dims *out_dims, int8_t *output,
                          uint8_t *mask);

/* copy one concat operand into its channel range of the output, rescaled. */
tte_status tte_concat_channels_s8(const tte_dims *in_dims, const int8_t *input, int32_t input_zero_point,
                                  float multiplier, int32_t output_zero_point, int32_t qmin, int32_t qmax,
                                  int32_t out_channels, int32_t channel_offset, int8_t *output, uint8_t *mask);

/* the same with TFLite's arithmetic: a copy when the parameters are equal, else TFLite's Requantize. */
tte_status tte_concat_channels_tflite_s8(const tte_dims *in_dims, const int8_t *input, int32_t input_zero_point,
                                         int32_t multiplier, int32_t shift, int32_t output_zero_point, int32_t qmin,
                                         int32_t qmax, int32_t out_channels, int32_t channel_offset, int8_t *output,
                                         uint8_t *mask);

/* float32 -> int8: q = clamp(round_half_even(x / scale) + zero_point); NaN gives -128. */
tte_status tte_quantize_f32(int32_t size, const float *input, float scale, int32_t zero_point, int8_t *output);

/* the same with TFLite's rounding, half away from zero; NaN gives -128. */
tte_status tte_quantize_tflite_f32(int32_t size, const float *input, float scale, int32_t zero_point,
                                   int8_t *output);

/* int8 -> float32: (q - zero_point) * scale. */
tte_status tte_dequantize_s8(int32_t size, const int8_t *input, float scale, int32_t zero_point, float *output);

/* ---- patch-based execution of a frozen stage (tte/passes/patch.py, tte/ops/patch.py) ----
 * The first frozen layers run band by band of their result's rows, as MCUNetV2 runs them: for each band, each op
 * computes only the rows of its result the band needs (halo rows recomputed band after band, or kept in the buffer
 * from band to band: tte_patch_keep_s8) into a band buffer that holds those rows of every channel (NCHW: plane p's
 * rows at p * (end - first) * W).  Rows are {first, end}, the rows [first, end) of the whole tensor a buffer holds;
 * a whole tensor is the buffer of rows {0, H}.  in_dims and out_dims are the whole tensors'; no saturation mask (the
 * layers are frozen). */

/* One band of a conv (tte_conv_s8; a depthwise one through tte_conv_dw_s8, with scratch: one band output plane):
 * rows out_rows of the output into a band buffer of exactly those rows, from a band buffer of rows in_rows of the
 * input, which may hold more rows than the band reads. */
tte_status tte_patch_conv_s8(const tte_conv_geometry *geo, const tte_quant_params *q, const tte_dims *in_dims,
                             const int32_t *in_rows, const int8_t *input, const tte_dims *w_dims,
                             const tte_split_weights *weights, const int32_t *weight_zero_points, const int32_t *bias,
                             const float *multipliers, const tte_dims *out_dims, const int32_t *out_rows,
                             int8_t *output, int8_t *scratch);

/* One band of a fused 1x1 + depthwise conv (tte_conv_pw_dw_s8): the 1x1 conv expands every row of the input's band
 * buffer (in_rows; scratch: one plane of them). */
tte_status tte_patch_pw_dw_s8(const tte_quant_params *q1, const int8_t *w1, const int32_t *w1_zero_points,
                              const int32_t *b1, const float *m1, const tte_conv_geometry *geo2,
                              const tte_quant_params *q2, const tte_dims *w2_dims, const int8_t *w2,
                              const int32_t *w2_zero_points, const int32_t *b2, const float *m2,
                              const tte_dims *in_dims, const int32_t *in_rows, const int8_t *input,
                              const tte_dims *out_dims, const int32_t *out_rows, int8_t *output, int8_t *scratch);

/* Copy rows `rows` of each of `planes` planes (`width` columns) from a buffer of rows from_rows to one of rows
 * to_rows: the rows an op reads out of a band buffer that holds more, or a band into the whole result. */
tte_status tte_patch_rows_s8(int32_t planes, int32_t width, const int32_t *rows, const int32_t *from_rows,
                             const int8_t *from, const int32_t *to_rows, int8_t *to);

/* The rows of from_rows that to_rows holds too, moved in place from a band buffer's layout of rows from_rows to its
 * layout of rows to_rows (the rows a buffer keeps from one band to the next). */
tte_status tte_patch_keep_s8(int32_t planes, int32_t width, const int32_t *from_rows, const int32_t *to_rows,
                             int8_t *buffer);

/* A source of input rows (a model compiled with a streamed input, `tte compile --stream-input`): writes row `row` of
 * the int8 input, for each channel c its `width` values at dst + c * channel_stride; returns 0, or non-zero to fail
 * the call that asked (the step or inference then returns -1).  A step asks for each row once, from the top down. */
typedef int (*tte_row_source)(void *context, int32_t row, int8_t *dst, int32_t channel_stride);

/* Rows new_rows = {first, end} of a streamed input of `planes` channels, `width` columns, from `source`, straight
 * into a band buffer of rows window (which holds them): plane p's row r at buffer + (p * rows + r - window[0]) *
 * width.  TTE_ERROR_SOURCE when the source fails. */
tte_status tte_patch_fetch_s8(tte_row_source source, void *context, int32_t planes, int32_t width,
                              const int32_t *new_rows, const int32_t *window, int8_t *buffer);

/* ---- training: float32 backward in real units, in the summation orders of the Python reference ---- */

/* softmax cross-entropy over k logits for each of n samples: mean loss and dloss/dlogits. */
tte_status tte_xent_f32(int32_t n, int32_t k, const float *logits, const int32_t *labels, float *loss, float *grad);

/* grad * mask (bit-packed); may run in place. */
tte_status tte_ste_f32(int32_t size, const float *grad, const uint8_t *mask, float *output);

/* real-valued weights: (w - z_w[o]) * s_w[o]. */
typedef struct {
    tte_split_weights data;
    const int32_t *zero_points; /* NULL: all zero */
    const float *scales;        /* one per output channel */
} tte_weights_s8;

/* dL/dx of a conv (any groups).  For each input element: sum over the group's output channels, then taps
 * (i, j), ascending.  A depthwise conv may run in place (scratch: one float plane of the input). */
int32_t tte_conv_grad_input_f32_get_buffer_size(const tte_dims *in_dims);
tte_status tte_conv_grad_input_f32(const tte_conv_geometry *geo, const tte_dims *w_dims, const tte_weights_s8 *w,
                                   const tte_dims *dz_dims, const float *dz, const tte_dims *in_dims, float *dx,
                                   float *scratch);

/* How an integer parameter absorbs a step (tte.autodiff.backward.TrainOptions.rounding). */
typedef enum { TTE_ROUND_NEAREST = 0, TTE_ROUND_TRUNC = 1, TTE_ROUND_STOCHASTIC = 2, TTE_ROUND_ACCUMULATE = 3 }
    tte_rounding;

typedef struct {
    float lr;
    int32_t rounding;          /* tte_rounding */
    uint32_t seed, stream, step;
    int32_t qmin, qmax;        /* the parameter's range */
    float *residual;           /* ACCUMULATE: one float per trained value (the gradient slice's layout) */
} tte_sgd_params;

/* The saved input of a weight-trained layer, read in real units: (x - zero_point) * scale. */
typedef struct {
    const int8_t *data;
    int32_t zero_point;
    float scale;
} tte_saved_s8;

/* conv weight gradient for the leading `channels` input channels (depthwise: channels), applied at once
 * with SGD, one output channel at a time: no gradient buffer (scratch: one channel's slice of floats, at least
 * tte_conv_weight_update_get_buffer_size; scratch_bytes: its size, which a pointwise conv on a Cortex-M FPU uses
 * beyond that when it can, see the source).  Gradient order: samples, then output rows, then columns, ascending.
 * factors[o]: real -> integer units.  `weights` is the trained slice (the `trained` part of its
 * tte_split_weights). */
int32_t tte_conv_weight_update_get_buffer_size(const tte_dims *w_dims, int32_t channels, int32_t depthwise);
tte_status tte_conv_weight_update_s8(const tte_conv_geometry *geo, int32_t depthwise, int32_t channels,
                                     const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                     const float *dz, const float *factors, const tte_sgd_params *sgd,
                                     const tte_dims *w_dims, int8_t *weights, float *scratch, int32_t scratch_bytes);

/* the same gradients as buffers, for updates that need them whole (momentum) */
tte_status tte_conv_grad_weight_f32(const tte_conv_geometry *geo, int32_t depthwise, int32_t channels,
                                    const tte_dims *x_dims, const tte_saved_s8 *x, const tte_dims *dz_dims,
                                    const float *dz, const tte_dims *w_dims, float *grad);
tte_status tte_bias_grad_f32(const tte_dims *dz_dims, const float *dz, float *grad);
tte_status tte_gemm_grad_weight_f32(int32_t n, int32_t k, int32_t m, int32_t channels, const tte_saved_s8 *x,
                                    const float *dz, float *grad);

/* bias gradient (sum over samples, then positions) applied with SGD. */
tte_status tte_bias_update_s32(const tte_dims *dz_dims, const float *dz, const float *factors,
                               const tte_sgd_params *sgd, int32_t *bias);

/* dx[b, k] = sum over m of dz[b, m] * W[m, k]. */
tte_status tte_gemm_grad_input_f32(int32_t n, int32_t k, int32_t m, const float *dz, const tte_weights_s8 *w,
                                   float *dx);

/* gemm weight gradient for the leading `channels` inputs (sum over samples), applied with SGD. */
tte_status tte_gemm_weight_update_s8(int32_t n, int32_t k, int32_t m, int32_t channels, const tte_saved_s8 *x,
                                     const float *dz, const float *factors, const tte_sgd_params *sgd,
                                     int8_t *weights);

/* SGD on an already computed gradient (used with momentum) of a trained slice stored as that slice:
 * `size` values, factors[i / row_length] converts units. */
tte_status tte_sgd_s8(int32_t size, int32_t row_length, const float *grad, const float *factors,
                      const tte_sgd_params *sgd, int8_t *param);
tte_status tte_sgd_s32(int32_t size, const float *grad, const float *factors, const tte_sgd_params *sgd,
                       int32_t *param);

/* velocity = beta * velocity + grad, in place. */
tte_status tte_momentum_f32(int32_t size, float beta, const float *grad, float *velocity);

tte_status tte_avgpool_grad_f32(const tte_pool_geometry *geo, int32_t count_include_pad, const tte_dims *dz_dims,
                                const float *dz, const tte_dims *in_dims, float *dx);
tte_status tte_global_avgpool_grad_f32(const tte_dims *in_dims, const float *dz, float *dx);
tte_status tte_maxpool_grad_f32(const tte_pool_geometry *geo, const tte_dims *in_dims, const int8_t *input,
                                const tte_dims *dz_dims, const float *dz, float *dx);

/* out = a + b (gradient accumulation); may run in place. */
tte_status tte_add_f32(int32_t size, const float *a, const float *b, float *output);

/* ---- the fused backward of a trained inverted-residual block (1x1 pw1 -> depthwise dw -> 1x1 pw2) ---- */

/* One conv of the block as tte_block_backward_f32 reads and trains it.  A weight that trains is updated in its
 * trained slice `weights` (the `trained` part of w's tte_split_weights), its leading `channels` input channels
 * (depthwise: rows), from the saved input x; factors: real -> integer units, one per output channel. */
typedef struct {
    const tte_dims *w_dims;
    const tte_weights_s8 *w;          /* real-valued weights */
    const uint8_t *mask;              /* its output's saturation mask (pw2: NULL, its gradient comes masked) */
    const tte_saved_s8 *x;            /* its saved input, or NULL when its weight does not train */
    int8_t *weights;                  /* the weight's trained slice, or NULL */
    int32_t channels;
    const float *weight_factors;
    const tte_sgd_params *weight_sgd;
    int32_t *bias;                    /* the bias, or NULL when it does not train (pw2's: always NULL) */
    const float *bias_factors;
    const tte_sgd_params *bias_sgd;
} tte_block_conv;

/* From dz2, the masked gradient at pw2's output ([n, o, h2, w2]), one expanded channel c at a time: the plane of
 * the depthwise output's gradient (sum over o, ascending, of dz2 * W2[o, c]) times dw's mask; pw2's weight column
 * c, dw's bias and weight row c updated; the plane of pw1's output gradient (the depthwise transpose: taps in
 * order) times pw1's mask; pw1's bias and weight row c updated; its terms added to dx (the block input's
 * gradient: for each element the sum over c, ascending, from 0).  The same operations in the same order as the
 * unfused kernels (tte_conv_grad_input_f32, tte_ste_f32, tte_bias_update_s32, tte_conv_weight_update_s8), so the
 * same numbers.  The channels go `group` (1 .. TTE_BLOCK_MAX_GROUP) at a time, through a plane or two of float
 * scratch per channel of a group (tte_block_backward_f32_get_buffer_size).  pw1 NULL: no gradient reaches pw1
 * (then dx is NULL too); dx NULL: the block input's gradient is not wanted.  mid_dims: pw1's output (dw's input). */
#define TTE_BLOCK_MAX_GROUP 8
#define TTE_BLOCK_MAX_TAPS 7 /* the largest depthwise kernel: 7x7 */
int32_t tte_block_backward_f32_get_buffer_size(const tte_dims *dz2_dims, const tte_dims *mid_dims, int32_t pw1_stage,
                                               int32_t group);
tte_status tte_block_backward_f32(const tte_dims *dz2_dims, const float *dz2, const tte_block_conv *pw2,
                                  const tte_conv_geometry *dw_geo, const tte_block_conv *dw, const tte_dims *mid_dims,
                                  const tte_block_conv *pw1, const tte_dims *dx_dims, float *dx, int32_t group,
                                  float *scratch);

/* copy channels [start, stop) of an NCHW tensor. */
tte_status tte_slice_channels_f32(const tte_dims *in_dims, int32_t start, int32_t stop, const float *input,
                                  float *output);

/* ---- squeeze-and-excitation ops: table-driven activations, elementwise multiply ---- */

/* int8 -> int8 through a 256-entry table (HardSwish, Sigmoid: tte/reference/activations.py:unary_tables),
 * indexed by input + 128.  mask_table: the 256 mask bits, bit-packed (32 bytes, entry k in bit k & 7 of byte
 * k >> 3); it may be NULL only when mask is.  May run in place (output == input). */
tte_status tte_lut_s8(int32_t size, const int8_t *input, const int8_t *table, const uint8_t *mask_table,
                      int8_t *output, uint8_t *mask);

/* dx = dy * grad_table[input + 128]: the derivative table, zero where the output saturated, of the saved int8
 * input.  May run in place (dx == dy). */
tte_status tte_lut_grad_f32(int32_t size, const float *dy, const int8_t *input, const float *grad_table,
                            float *dx);

/* elementwise multiply: v = (float)((a - za) * (b - zb)) * multiplier, multiplier = s_a * s_b / s_y.  b_dims
 * equal a_dims or are [n, c, 1, 1] (one value per channel plane); anything else is TTE_ERROR_ARGUMENT.  May run
 * in place (output == a, or output == b when b has a's dims). */
tte_status tte_mul_s8(const tte_dims *a_dims, const int8_t *a, int32_t a_zero_point, const tte_dims *b_dims,
                      const int8_t *b, int32_t b_zero_point, float multiplier, int32_t output_zero_point,
                      int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* the same with TFLite's arithmetic: MBQM((a - za) * (b - zb), multiplier, shift) + zy. */
tte_status tte_mul_tflite_s8(const tte_dims *a_dims, const int8_t *a, int32_t a_zero_point, const tte_dims *b_dims,
                             const int8_t *b, int32_t b_zero_point, int32_t multiplier, int32_t shift,
                             int32_t output_zero_point, int32_t qmin, int32_t qmax, int8_t *output, uint8_t *mask);

/* gradient of a multiply's operand shaped like dz: d_this = dz * real(other), other with dz's dims or per
 * channel [n, c, 1, 1]; anything else is TTE_ERROR_ARGUMENT.  May run in place (d_this == dz). */
tte_status tte_mul_grad_f32(const tte_dims *dz_dims, const float *dz, const tte_dims *other_dims,
                            const tte_saved_s8 *other, float *d_this);

/* gradient of a per-channel operand [n, c, 1, 1]: d_this[n, c] = sum over positions (ascending) of
 * dz * real(other), other saved with dz's dims.  May run in place (d_this == dz). */
tte_status tte_mul_grad_channel_f32(const tte_dims *dz_dims, const float *dz, const tte_saved_s8 *other,
                                    float *d_this);

/* global average pool of an activation of the int8 input (onnxruntime's float DequantizeLinear -> HardSwish ->
 * GlobalAveragePool -> QuantizeLinear): per plane, the float32 sum over positions (ascending, from -0.0f) of
 * table[x + 128] (the activation in real units), times multiplier = 1 / (s_y * H * W), rounded and clamped. */
tte_status tte_lut_global_avgpool_s8(const tte_dims *in_dims, const int8_t *input, const float *table,
                                     float multiplier, int32_t output_zero_point, int32_t qmin, int32_t qmax,
                                     int8_t *output, uint8_t *mask);

/* per-channel affine map (a BatchNormalization, or a multiply by a constant): v = (float)(x - zx) *
 * multipliers[c] + offsets[c], each operation rounded to float32, then rounded and clamped; the channel is dims'
 * second dimension.  May run in place (output == input). */
tte_status tte_affine_s8(const tte_dims *dims, const int8_t *input, int32_t input_zero_point,
                         const float *multipliers, const float *offsets, int32_t output_zero_point, int32_t qmin,
                         int32_t qmax, int8_t *output, uint8_t *mask);

/* gradient of the affine map's input: dx = dy * slopes[c] (slopes in real units).  May run in place (dx == dy). */
tte_status tte_affine_grad_f32(const tte_dims *dims, const float *dy, const float *slopes, float *dx);

/* ---- persistent training state: tte_crc32, tte_state_blob_bytes, tte_state_find, tte_state_write, tte_state_read
 *
 * A model's training state (its trained tensors and the count of steps trained) is saved as one blob into one of
 * two slots of a storage the caller provides through callbacks (flash, EEPROM, a file).  Blob format version 1,
 * integers little-endian:
 *
 *   offset 0   magic "TTES" (TTE_STATE_MAGIC)       offset 16  the model's fingerprint (64 bits)
 *   offset 4   format version (TTE_STATE_VERSION)   offset 24  steps trained (64 bits)
 *   offset 8   blob bytes (header + tensors + CRC)  offset 32  every tensor's bytes, in the layout's order, as the
 *   offset 12  sequence number                                 device holds them (little-endian targets)
 *   last 4 bytes: CRC-32 (IEEE 802.3, zlib's crc32) of every byte before them
 *
 * Every format version keeps the magic, version and size at offsets 0, 4 and 8 and the CRC last.  Slot k starts at
 * byte k * slot_size of the storage; storage is read and written in units of TTE_STATE_UNIT bytes at offsets that
 * are multiples of it (a flash driver sees aligned, whole units; the last unit of a blob is padded with 0xFF).
 * Saving writes the slot that does not hold the newest valid blob, with the next sequence number, then reads it
 * back; loading takes the valid blob with the newest sequence number.  So a power cut at any moment of a save
 * leaves the previous state loadable, and a blob whose CRC does not match is never loaded. */
#define TTE_STATE_MAGIC 0x53455454u /* "TTES" */
#define TTE_STATE_VERSION 1u
#define TTE_STATE_HEADER_BYTES 32u
#define TTE_STATE_CRC_BYTES 4u
#define TTE_STATE_UNIT 32u

typedef enum {
    TTE_STATE_OK = 0,
    TTE_STATE_ERROR_ARGUMENT = -1, /* a NULL pointer; a slot size not a multiple of TTE_STATE_UNIT, or too small */
    TTE_STATE_ERROR_IO = -10,      /* a read, write or erase callback returned non-zero (nothing was loaded) */
    TTE_STATE_ERROR_EMPTY = -11,   /* no blob in either slot */
    TTE_STATE_ERROR_CORRUPT = -12, /* only blobs whose size or CRC is wrong (a cut write, a flipped bit) */
    TTE_STATE_ERROR_VERSION = -13, /* a complete blob of another format version */
    TTE_STATE_ERROR_MODEL = -14,   /* a complete blob of another model (fingerprint or size) */
    TTE_STATE_ERROR_VERIFY = -15   /* the blob just written did not read back intact */
} tte_state_status;

/* kinds and dtypes of tte_state_tensor */
#define TTE_STATE_WEIGHT 1
#define TTE_STATE_BIAS 2
#define TTE_STATE_OPTIMIZER 3
#define TTE_STATE_INT8 1
#define TTE_STATE_INT32 2
#define TTE_STATE_FLOAT32 3

/* One trained tensor as the device holds it (a generated model's table, tte_tensors in tte_model.h). */
typedef struct {
    const char *name;      /* ONNX initializer name (trained parameters) or tte's name (optimizer state) */
    void *data;            /* the array in SRAM */
    uint32_t bytes;        /* its size */
    int32_t kind;          /* TTE_STATE_WEIGHT, TTE_STATE_BIAS or TTE_STATE_OPTIMIZER */
    int32_t dtype;         /* TTE_STATE_INT8, TTE_STATE_INT32 or TTE_STATE_FLOAT32 */
    int32_t rank;          /* 0 (a scalar) to 4 */
    int32_t dims[4];       /* the array's shape (dims past rank are 1) */
    int32_t split_axis;    /* -1, or the axis along which only the leading dims[split_axis] channels are here */
    int32_t full_channels; /* the tensor's channels along split_axis (the rest are frozen, in flash) */
} tte_state_tensor;

/* What a blob holds: the tensors, in order, and the fingerprint that identifies the model. */
typedef struct {
    uint64_t fingerprint;
    const tte_state_tensor *tensors;
    int32_t count;
} tte_state_layout;

/* Storage callbacks: `offset` counts bytes from the start of the storage (slot 0), `size` is TTE_STATE_UNIT and
 * offsets are multiples of it (erase: a whole slot).  Each returns 0 on success. */
typedef int (*tte_state_read_fn)(void *ctx, uint32_t offset, void *data, uint32_t size);
typedef int (*tte_state_write_fn)(void *ctx, uint32_t offset, const void *data, uint32_t size);
typedef int (*tte_state_erase_fn)(void *ctx, uint32_t offset, uint32_t size);

typedef struct {
    tte_state_read_fn read;
    tte_state_write_fn write; /* may be NULL when only loading */
    tte_state_erase_fn erase; /* NULL when the storage needs no erase before a write (RAM, EEPROM, files) */
    void *ctx;                /* passed to every callback */
    uint32_t slot_size;       /* bytes per slot: a multiple of TTE_STATE_UNIT, at least the blob rounded up to one */
} tte_state_storage;

/* A valid blob found in storage. */
typedef struct {
    int32_t slot;      /* 0 or 1 */
    uint32_t sequence; /* larger (modulo 2^32) is newer */
    uint64_t steps;    /* steps trained when it was saved */
} tte_state_slot;

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32): crc = tte_crc32(0, data, n), continued with
 * tte_crc32(crc, more, m).  data may be NULL when size is 0. */
uint32_t tte_crc32(uint32_t crc, const void *data, uint32_t size);

/* The bytes of a blob of `layout` (header, tensors, CRC); 0 for a NULL or malformed layout or one too large. */
uint32_t tte_state_blob_bytes(const tte_state_layout *layout);

/* The newest valid blob of `layout` in either slot (newest->slot, sequence, steps).  When neither slot holds one,
 * the most telling reason: TTE_STATE_ERROR_IO if a read failed, else MODEL, VERSION, CORRUPT, EMPTY in that order. */
tte_state_status tte_state_find(const tte_state_layout *layout, const tte_state_storage *storage,
                                tte_state_slot *newest);

/* Save the layout's tensors and `steps` into the slot that does not hold the newest valid blob (slot 0 when there
 * is none), with the next sequence number: erase (if storage->erase), write the blob unit by unit, read it back. */
tte_state_status tte_state_write(const tte_state_layout *layout, uint64_t steps, const tte_state_storage *storage);

/* Load the newest valid blob into the layout's tensors and *steps.  On any error nothing is written, except if the
 * storage changes between the check and the copy (TTE_STATE_ERROR_CORRUPT after a partial copy: load again). */
tte_state_status tte_state_read(const tte_state_layout *layout, const tte_state_storage *storage, uint64_t *steps);

#ifdef __cplusplus
}
#endif

#endif /* TTE_RUNTIME_H */
