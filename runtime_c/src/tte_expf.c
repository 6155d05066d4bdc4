#include <math.h>

#include "tte_internal.h"

/* k = round_half_even(x * log2 e); r = (x - k * LN2_HI) - k * LN2_LO; degree-6 Horner; times 2^k.
 * Every operation is a single float32 operation, as in the Python reference. */
float tte_expf(float x) {
    static const float poly[7] = {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f};
    if (x < -87.3f) return 0.0f;
    float t = x * 1.44269504088896341f;
    float k = rintf(t);
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = poly[0];
    for (int i = 1; i < 7; i++) p = p * r + poly[i];
    return ldexpf(p, (int)k);
}
