// See small-gemm.h. Three versions (AVX-512F, AVX2+FMA, plain C++) chosen at run time by activeIsa()
// (compressed.h: CPU detection, capped by compressedIsa(cap) / LONAS_SIMD so tests run every version).
// The SIMD versions are one template (small-gemm-kernel.inc) compiled under two `#pragma GCC target`s.
//
// Blocking (measured on this 2-core Zen 4, weights from DRAM): rows of x go in passes of at most kMaxPass
// (4); per pass, NB = kSlots / rows weight rows share one register block (AVX-512: 16 accumulators, e.g.
// 4 × 4, or 16 weight rows × 1 for decode). A block's weight rows are re-read from L1 by the next pass, so
// each weight byte comes from memory once. The accumulators of a block are summed by one transposed add tree
// (16 vectors → one vector of 16 sums): per-output horizontal sums had cost ~2× the FMAs at K = 576.
// At 6 or 7 rows (AVX-512 only) one pass covers every row: 6 × 4 or 7 × 3 blocks of 24 or 21 accumulators,
// reduced as one 16-slot tree plus a zero-padded second one (same tree per slot, so the same bits). Measured
// 1 thread, weights from DRAM, N × K = 1536 × 576, old vs new interleaved, medians: 6 rows 183 → 145 µs, 7 rows
// 202 → 167 µs. At 5 and 8 rows no larger block beat 4-row passes beyond noise (8 rows stays ~200 µs ≈ 18 GB/s
// of weights: bound by the memory stream, ~175 µs with the weights in L3).
// Versus OpenBLAS 0.3.21 (sgemv at M = 1, sgemm above), same process, interleaved, medians:
//   1×1536×576 0.65×, 8×1536×576 0.59×, 8×576×576 0.48×, 8×32000×576 0.44×, 16×1536×576 ~1× (time ratio);
// for weights under 64 K elements OpenBLAS's lower call overhead wins (gemm.cc routes those to it).
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_*() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "small-gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "compressed.h"

#define INL inline __attribute__((always_inline))

// Software prefetch distance into L2 along the weight rows. The hardware prefetcher alone sustains ~20 GB/s
// only while few instructions run per weight byte; at 8 rows of x (8 FMAs per weight vector) demand misses
// capped the stream near 7 GB/s. Prefetching into L2 restores it; the distance must clear a whole register
// block (16 rows at one row of x: 36 KB of float32 or 18 KB of bf16 at K = 576): measured 8 / 16 / 32 / 64 KB,
// 32 KB was best or within noise of it everywhere (bf16 one-row products: 12 → 20 GB/s against 8 KB).
constexpr int kPrefetchBytes = 32768;

namespace lonas {
namespace {

// bfloat16 bits → float32, exactly (the bf16 value is the top half of the float32).
INL float widen(float v) { return v; }
INL float widen(uint16_t v) {
  uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
struct T {
  using V = __m512;
  static constexpr int kWidth = 16, kSlots = 16, kMaxPass = 4, kRegs = 32, kMaxAcc = 24;
  static INL V zero() { return _mm512_setzero_ps(); }
  static INL V load(const float* p) { return _mm512_loadu_ps(p); }
  static INL V load(const uint16_t* p) {
    __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
  static INL V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static INL V loadReg(const float* p) {
    V r;
    asm("vmovups %1, %0" : "=v"(r) : "m"(*reinterpret_cast<const V*>(p)));
    return r;
  }
  // Sums of 4 vectors, per 128-bit lane L: out = [Σ_L v0, Σ_L v1, Σ_L v2, Σ_L v3] (elements (e0 + e2) + (e1 + e3)).
  static INL V sum4(V v0, V v1, V v2, V v3) {
    V a = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
    V b = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
  }
  // out[s] = Σ of the 16 lanes of acc[s]: per 128-bit lane as sum4, then lanes (L0 + L1) + (L2 + L3).
  static INL void reduce(const V* acc, float* out) {
    V s0 = sum4(acc[0], acc[1], acc[2], acc[3]), s1 = sum4(acc[4], acc[5], acc[6], acc[7]);
    V s2 = sum4(acc[8], acc[9], acc[10], acc[11]), s3 = sum4(acc[12], acc[13], acc[14], acc[15]);
    V t = _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, 0x88), _mm512_shuffle_f32x4(s0, s1, 0xDD));
    V u = _mm512_add_ps(_mm512_shuffle_f32x4(s2, s3, 0x88), _mm512_shuffle_f32x4(s2, s3, 0xDD));
    _mm512_store_ps(out, _mm512_add_ps(_mm512_shuffle_f32x4(t, u, 0x88), _mm512_shuffle_f32x4(t, u, 0xDD)));
  }
};
#include "small-gemm-kernel.inc"
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
struct T {
  using V = __m256;
  static constexpr int kWidth = 8, kSlots = 8, kMaxPass = 4, kRegs = 16, kMaxAcc = 8;
  static INL V zero() { return _mm256_setzero_ps(); }
  static INL V load(const float* p) { return _mm256_loadu_ps(p); }
  static INL V load(const uint16_t* p) {
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
  static INL V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static INL V loadReg(const float* p) { return load(p); }
  static INL V sum4(V v0, V v1, V v2, V v3) {
    V a = _mm256_add_ps(_mm256_unpacklo_ps(v0, v1), _mm256_unpackhi_ps(v0, v1));
    V b = _mm256_add_ps(_mm256_unpacklo_ps(v2, v3), _mm256_unpackhi_ps(v2, v3));
    return _mm256_add_ps(_mm256_shuffle_ps(a, b, 0x44), _mm256_shuffle_ps(a, b, 0xEE));
  }
  // out[s] = Σ of the 8 lanes of acc[s]: per 128-bit lane as sum4, then L0 + L1.
  static INL void reduce(const V* acc, float* out) {
    V s0 = sum4(acc[0], acc[1], acc[2], acc[3]), s1 = sum4(acc[4], acc[5], acc[6], acc[7]);
    _mm256_store_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(s0, s1, 0x20), _mm256_permute2f128_ps(s0, s1, 0x31)));
  }
};
#include "small-gemm-kernel.inc"
}  // namespace avx2
#pragma GCC pop_options

// Plain C++: one float accumulator per output, k in order.
template <class WT>
void rangeScalar(const SmallGemm& g, int64_t c0, int64_t c1) {
  const WT* w = static_cast<const WT*>(g.w);
  for (int64_t m = 0; m < g.M; m++) {
    const float* x = g.x + m * g.ldx;
    float* yr = g.y + m * g.ldy;
    for (int64_t n = c0; n < c1; n++) {
      const WT* wr = w + n * g.ldw;
      float s = 0.0f;
      for (int64_t k = 0; k < g.K; k++) s += widen(wr[k]) * x[k];
      s *= g.alpha;
      yr[n] = g.beta == 0.0f ? s : s + g.beta * yr[n];
    }
  }
}

template <class WT>
void runRange(const SmallGemm& g, Isa isa, int64_t c0, int64_t c1, const float* xtail) {
  if (isa == Isa::Avx512) avx512::range<WT>(g, c0, c1, xtail);
  else if (isa == Isa::Avx2) avx2::range<WT>(g, c0, c1, xtail);
  else rangeScalar<WT>(g, c0, c1);
}

}  // namespace

void smallGemmNT(const SmallGemm& g, int threads) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.alpha == 0.0f || g.K == 0) {  // BLAS: A and B are not read; y = beta · y
    for (int64_t m = 0; m < g.M; m++) {
      float* yr = g.y + m * g.ldy;
      for (int64_t n = 0; n < g.N; n++) yr[n] = g.beta == 0.0f ? 0.0f : g.beta * yr[n];
    }
    return;
  }
  const Isa isa = activeIsa();
  // Zero-padded tails of x's rows (k from the last whole vector of 16 floats; 8-wide AVX2 uses a prefix).
  alignas(64) float xtail[kSmallGemmMaxRows * 16];
  const int width = isa == Isa::Avx512 ? 16 : 8;
  const int64_t kv = g.K / width * width;
  for (int64_t m = 0; m < g.M; m++) {
    for (int64_t k = kv; k < kv + 16; k++) xtail[m * 16 + (k - kv)] = k < g.K ? g.x[m * g.ldx + k] : 0.0f;
  }
  const int64_t bytes = g.N * g.K * (g.bf16 ? 2 : 4);
  // Below ~256 KB of weights the call takes ≲ 20 µs: one thread (the hand-off would cost more).
  int t = bytes < (int64_t{256} << 10) ? 1 : std::max(1, threads);
  const int64_t nb = 16;  // columns per piece of work: whole register blocks for every M
  const int64_t blocks = (g.N + nb - 1) / nb;
  const int chunks = static_cast<int>(std::min<int64_t>(blocks, t == 1 ? 1 : t * kChunksPerThread));
  auto body = [&](int i) {
    const int64_t b0 = blocks * i / chunks, b1 = blocks * (i + 1) / chunks;
    const int64_t c0 = b0 * nb, c1 = std::min(g.N, b1 * nb);
    if (g.bf16) runRange<uint16_t>(g, isa, c0, c1, xtail);
    else runRange<float>(g, isa, c0, c1, xtail);
  };
  if (chunks <= 1) body(0);
  else parallelChunks(chunks, t, body);
}

}  // namespace lonas
