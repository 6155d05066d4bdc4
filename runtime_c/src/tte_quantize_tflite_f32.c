#include "tte_internal.h"
#include "tte_runtime.h"

/* float32 -> int8 with TFLite's arithmetic (AffineQuantize): q = round(x / scale) half away from zero, + z,
 * clamped.  The quotient is clamped to [-256, 256] first (NaN to -256), which cannot change a clamped result and
 * keeps the conversion defined; the fraction left after truncation is exact. */
tte_status tte_quantize_tflite_f32(int32_t size, const float *input, float scale, int32_t zero_point,
                                   int8_t *output) {
    for (int32_t i = 0; i < size; i++) {
        float v = input[i] / scale;
        if (!(v >= -256.0f)) v = -256.0f;
        if (v > 256.0f) v = 256.0f;
        int32_t r = (int32_t)v;
        const float fraction = v - (float)r;
        if (fraction >= 0.5f) r++;
        if (fraction <= -0.5f) r--;
        r += zero_point;
        output[i] = (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
    }
    return TTE_OK;
}
