// See vexp.h.
#include "vexp.h"
#include "multiversion.h"

#include <cmath>

namespace lonas {

LONAS_MULTIVERSION
void vexp(float* out, const float* in, int64_t n, float scale, float shift) {
  // Every step is a plain arithmetic expression or a select, so the loop vectorises (no calls, no branches).
  for (int64_t i = 0; i < n; i++) {
    const float x = scale * in[i] - shift;
    float xc = x < -87.33654f ? -87.33654f : x;
    xc = xc > 88.3762626647949f ? 88.3762626647949f : xc;  // keeps k in [−126, 127]
    // k = round(x / ln2) by the 1.5·2^23 trick (round to nearest in the default rounding mode)
    const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    // r = x − k·ln2 with ln2 = 0.693359375 − 2.12194440e−4 (the high part is exact in float)
    float r = xc - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const float two_k = __builtin_bit_cast(float, (static_cast<int32_t>(k) + 127) << 23);  // 2^k
    float y = p * two_k;
    y = x < -87.33654f ? 0.0f : y;
    y = x > 88.3762626647949f ? INFINITY : y;
    out[i] = y;
  }
}

}  // namespace lonas
