// gemmBf16 compute mode "bf16-act" (an APPROXIMATION of the exact mode): x · Wᵀ with x rounded to bfloat16
// (round to nearest even), so that the products of two bf16 values accumulate in float32 with AVX512-BF16
// vdpbf16ps: 32 weights per instruction, no widening. For M ≤ kSmallGemmMaxRows rows of x and W (N, K) bf16.
//
// Math: y[m, n] = alpha · Σ_k bf16(x[m, k]) · W[n, k] + beta · y (the product of two bf16 values is exact
// in float32). vdpbf16ps adds each lane's two products in order (odd element, then even) and treats
// subnormal inputs and results as 0 (DAZ/FTZ). Without AVX512-BF16 the same rounded x goes through the
// exact kernel (small-gemm.cc): the same products, only the summation order differs (and subnormals kept).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bf16-gemm.h"
#include "compressed.h"
#include "small-gemm.h"

#define LONAS_BF16DOT __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace lonas {
namespace {

// out[s] = Σ of the 16 lanes of acc[s] (a transposed add tree, as small-gemm.cc's).
LONAS_BF16DOT inline __m512 sum4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
  __m512 b = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
}
LONAS_BF16DOT inline __m512 reduce16(const __m512* acc) {
  __m512 s0 = sum4(acc[0], acc[1], acc[2], acc[3]), s1 = sum4(acc[4], acc[5], acc[6], acc[7]);
  __m512 s2 = sum4(acc[8], acc[9], acc[10], acc[11]), s3 = sum4(acc[12], acc[13], acc[14], acc[15]);
  __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, 0x88), _mm512_shuffle_f32x4(s0, s1, 0xDD));
  __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(s2, s3, 0x88), _mm512_shuffle_f32x4(s2, s3, 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(t, u, 0x88), _mm512_shuffle_f32x4(t, u, 0xDD));
}

constexpr int kPrefetchBytes = 32768;  // as small-gemm.cc (into L2, beyond a 16-row block)

// Weight rows [c0, c1) against every row of xb (M, K) bf16: blocks of 16 weight rows, 16 accumulators; the
// block's rows are re-read from L1 for the next row of x. K's tail (K mod 32) is a masked load.
LONAS_BF16DOT void rangeDot(const SmallGemm& g, const uint16_t* xb, int64_t c0, int64_t c1) {
  const uint16_t* w = static_cast<const uint16_t*>(g.w);
  const int64_t kv = g.K / 32 * 32;
  const __mmask32 tail = static_cast<__mmask32>((uint64_t{1} << (g.K - kv)) - 1);
  for (int64_t n0 = c0; n0 < c1; n0 += 16) {
    const int nb = static_cast<int>(std::min<int64_t>(16, c1 - n0));
    for (int64_t m = 0; m < g.M; m++) {
      const uint16_t* xr = xb + m * g.K;
      __m512 acc[16];
      for (int n = 0; n < 16; n++) acc[n] = _mm512_setzero_ps();
      for (int64_t k = 0; k < kv; k += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(xr + k);
        for (int n = 0; n < nb; n++) {
          const uint16_t* wr = w + (n0 + n) * g.ldw + k;
          if (m == 0) _mm_prefetch(reinterpret_cast<const char*>(wr) + kPrefetchBytes, _MM_HINT_T1);
          acc[n] = _mm512_dpbf16_ps(acc[n], (__m512bh)_mm512_loadu_si512(wr), xv);
        }
      }
      if (kv < g.K) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail, xr + kv);
        for (int n = 0; n < nb; n++) {
          acc[n] = _mm512_dpbf16_ps(acc[n], (__m512bh)_mm512_maskz_loadu_epi16(tail, w + (n0 + n) * g.ldw + kv), xv);
        }
      }
      alignas(64) float sums[16];
      _mm512_store_ps(sums, reduce16(acc));
      float* yr = g.y + m * g.ldy + n0;
      for (int n = 0; n < nb; n++) {
        const float s = g.alpha * sums[n];
        yr[n] = g.beta == 0.0f ? s : s + g.beta * yr[n];
      }
    }
  }
}

bool hasBf16Dot() {
  static const bool has = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  return has;
}

}  // namespace

// y = alpha · bf16(x) · Wᵀ + beta · y for g.M ≤ kSmallGemmMaxRows (g.bf16 must be set; x's row stride is g.ldx).
void smallGemmBf16Act(const SmallGemm& g, int threads) {
  if (g.M <= 0 || g.N <= 0) return;
  thread_local std::vector<uint16_t> xbBuf;
  thread_local std::vector<float> xrBuf;
  if (!(activeIsa() == Isa::Avx512 && hasBf16Dot()) || g.alpha == 0.0f || g.K == 0) {
    // the same rounded x through the exact kernel
    xrBuf.resize(g.M * g.K);
    for (int64_t m = 0; m < g.M; m++) {
      for (int64_t k = 0; k < g.K; k++) {
        const uint32_t bits = static_cast<uint32_t>(toBf16(g.x[m * g.ldx + k])) << 16;
        std::memcpy(&xrBuf[m * g.K + k], &bits, 4);
      }
    }
    SmallGemm r = g;
    r.x = xrBuf.data();
    r.ldx = g.K;
    return smallGemmNT(r, threads);
  }
  xbBuf.resize(g.M * g.K);
  for (int64_t m = 0; m < g.M; m++) {
    for (int64_t k = 0; k < g.K; k++) xbBuf[m * g.K + k] = toBf16(g.x[m * g.ldx + k]);
  }
  const int t = g.N * g.K * 2 < (int64_t{256} << 10) ? 1 : std::max(1, threads);
  const int64_t blocks = (g.N + 15) / 16;
  const int chunks = static_cast<int>(std::min<int64_t>(blocks, t == 1 ? 1 : t * kChunksPerThread));
  const uint16_t* xb = xbBuf.data();  // a pointer: a thread_local named inside the lambda would be the worker's own
  parallelChunks(chunks, t, [&](int i) {
    rangeDot(g, xb, std::min(g.N, blocks * i / chunks * 16), std::min(g.N, blocks * (i + 1) / chunks * 16));
  });
}

}  // namespace lonas
