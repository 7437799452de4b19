// INT4 group-quantised linear layer in the GPTQ / AutoGPTQ checkpoint layout, plus the run-time ISA
// dispatch and the worker pool shared with sparse.cc (see compressed.h).
//
// Layout (W is (out, in) logically, y = x · Wᵀ):
//   qweight (in/8, out) int32 — row p holds inputs 8p..8p+7 of every output column, input 8p+k in
//                               bits 4k..4k+3 (unsigned nibble q)
//   scales, zeros (nGroups, out) float32 — already unpacked by the loader (true zero point z)
//   gIdx (in) int32 — group of each input row; act-order checkpoints make it non-monotonic
//   W[o, j] = (float(q[j, o]) − zeros[g, o]) · scales[g, o],  g = gIdx[j]   (two float roundings)
//
// Paths:
//  - M ≤ kGemvMaxRows = 8 (decode, small batches): a matrix-vector product that streams the packed
//    weights once, all M rows sharing each unpacked nibble. (Measured on 1536×576: M = 8 costs ~3.5× M = 1,
//    while the tile path below costs ~10× M = 1 at M = 5..12, so the switch is at 8, not 4.) Per group g and
//    output o it uses Σ_j x_j (q − z) s = s · (Σ_j x_j q_j − z Σ_j x_j), vectorised across the
//    contiguous output dimension (16 outputs per AVX-512 register, 8 per AVX2 one). The nibble is turned
//    into a float without a conversion: (w >> shift & 0xF << 19) | bits(1.0f) is the float 1 + q/16,
//    one shift and one ternary-logic op instead of shift, and, cvtdq2ps; the 1 and 1/16 are folded into
//    the per-group fix-up: Σ x q = 16 Σ x f − 16 Σ x. The group's accumulators live in an L1-resident
//    buffer (outputs taken in blocks of ≤ 8 KB of accumulators), and qweight is read row after row, two
//    packed rows (16 inputs) per pass, the rows ~16 KB ahead prefetched into L2 (kPrefetchBytes).
//    When gIdx is not ⌊j/groupSize⌋ (act-order) a general version multiplies each nibble by its
//    group's scale row instead (measured 1.3–1.6× slower; a loader may instead reorder the rows by group
//    once, see int4GroupOrder in src/kernels/compressed.ts, and permute x).
//  - M > 8 (prefill): dequantise tiles of Wᵀ (≤ 2 MB) to float and accumulate them with cblas_sgemm
//    (beta = 1 after the first tile), so prefill runs at GEMM speed. The tiles are exactly the values
//    int4Dequantize produces.
//
// Threads: OpenBLAS owns the GEMM threads (the M > 8 paths follow setThreads). The matrix-vector path (no
// BLAS involved) can split its outputs over 2 threads of a small persistent pool (compressedThreads(2),
// default 1 — see compressed.h for the measurement behind the default).

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_*() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "compressed.h"

#define LONAS_AVX512 __attribute__((target("avx512f")))
#define LONAS_AVX2 __attribute__((target("avx2,fma")))
#define LONAS_INLINE inline __attribute__((always_inline))

namespace lonas {

// ---------------------------------------------------------------------------------------------
// INT4 kernels

namespace {

struct Int4Call {
  const float* x;  // (M, inF)
  int64_t M, inF, outF;
  const int32_t* qw;   // (inF/8, outF)
  const float* sc;     // (nGroups, outF)
  const float* zr;     // (nGroups, outF)
  const int32_t* gIdx; // (inF), every value in [0, nGroups)
  int64_t groupSize;
  int64_t nGroups;
  bool grouped;  // gIdx[j] = ⌊j / groupSize⌋ and groupSize % 8 == 0 → contiguous groups of whole packed rows
  float* y;      // (M, outF)
};

// Software prefetch into L2 about this far ahead in the packed rows of the current column block (the same
// columns, aheadRows rows down). The hardware prefetcher alone lags behind a loop this busy (small-gemm.cc's
// finding for float32 rows); at call entry the block's first rows are requested the same way. Measured on the
// 135M model's 210 projections at M = 1, 1 thread, cold: ~4% faster (medians 6.0 vs 6.25 ms per token, about
// the run-to-run noise) than prefetching the next pair into L1: the loop is mostly compute-bound at one thread
// (~3 vector ops per 16 weights: shift, and-or, FMA; ~11 GB/s of packed weights even from cache); 32 KB
// ahead no better.
constexpr int64_t kPrefetchBytes = 16384;

// Rows ahead for a column block of n outputs: ≈ kPrefetchBytes of the block, at least the next pair.
int64_t prefetchRows(int64_t n) { return std::max<int64_t>(2, kPrefetchBytes / (4 * std::max<int64_t>(n, 1))); }

// Requests rows [0, min(rows, packedRows)) of columns [o0, o1) into L2 (a call's first rows are not prefetched
// by the loop).
void prefetchFirstRows(const Int4Call& c, int64_t o0, int64_t o1, int64_t rows) {
  for (int64_t p = 0; p < std::min(rows, c.inF / 8); p++) {
    for (int64_t o = o0; o < o1; o += 16) _mm_prefetch(reinterpret_cast<const char*>(c.qw + p * c.outF + o), _MM_HINT_T1);
  }
}

// Per-thread scratch that only grows.
float* scratch(std::vector<float>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}

// The exact dequantised weight, as int4Dequantize and the reference define it.
LONAS_INLINE float dequant(uint32_t word, int k, float z, float s) {
  return (static_cast<float>((word >> (4 * k)) & 15u) - z) * s;
}

// Σ_j x[j] over [j0, j1) in double.
float sumRange(const float* x, int64_t j0, int64_t j1) { return static_cast<float>(sumF64(x + j0, j1 - j0)); }

// ---- scalar (portable) matrix-vector product over outputs [o0, o1), any gIdx -------------------

void int4GemvScalar(const Int4Call& c, int64_t o0, int64_t o1) {
  for (int64_t m = 0; m < c.M; m++) std::fill(c.y + m * c.outF + o0, c.y + m * c.outF + o1, 0.0f);
  for (int64_t p = 0; p < c.inF / 8; p++) {
    const uint32_t* row = reinterpret_cast<const uint32_t*>(c.qw + p * c.outF);
    for (int k = 0; k < 8; k++) {
      int64_t j = 8 * p + k, g = c.gIdx[j];
      const float* s = c.sc + g * c.outF;
      const float* z = c.zr + g * c.outF;
      for (int64_t m = 0; m < c.M; m++) {
        float xj = c.x[m * c.inF + j];
        float* y = c.y + m * c.outF;
        for (int64_t o = o0; o < o1; o++) y[o] += xj * dequant(row[o], k, z[o], s[o]);
      }
    }
  }
}

// ---- AVX-512 ----------------------------------------------------------------------------------

// Nibble K of every lane of w as the float 1 + q/16: q moved to mantissa bits 19..22, or'ed with 1.0f.
template <int K>
LONAS_AVX512 LONAS_INLINE __m512 nib512(__m512i w) {
  const __m512i keep = _mm512_set1_epi32(0x00780000), one = _mm512_set1_epi32(0x3F800000);
  __m512i t;
  if constexpr (K < 5) t = _mm512_slli_epi32(w, 19 - 4 * K);
  else t = _mm512_srli_epi32(w, 4 * K - 19);
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(t, keep, one, 0xEA));  // (t & keep) | one
}

// a[m] += f_k · x[m][j + k] for the 8 nibbles of w; with SCALED, f_k is first multiplied by the scale
// row of input j + k (srow[k] + o, general-gIdx path).
template <int M, bool SCALED, int K = 0>
LONAS_AVX512 LONAS_INLINE void nibbles512(__m512i w, const float* const* xr, int64_t j, const float* const* srow,
                                          int64_t o, __mmask16 mask, __m512* a) {
  if constexpr (K < 8) {
    __m512 f = nib512<K>(w);
    if constexpr (SCALED) f = _mm512_mul_ps(f, _mm512_maskz_loadu_ps(mask, srow[K] + o));
    for (int m = 0; m < M; m++) a[m] = _mm512_fmadd_ps(f, _mm512_set1_ps(xr[m][j + K]), a[m]);
    nibbles512<M, SCALED, K + 1>(w, xr, j, srow, o, mask, a);
  }
}

// One pass over outputs [o0, o1) for packed row p (and p + 1 when PAIR), grouped path:
// acc[m][o − o0] (+)= Σ_k x[m][8p + k] · f(q).
template <int M, bool PAIR, bool FIRST>
LONAS_AVX512 void rowPass512(const Int4Call& c, int64_t p, int64_t o0, int64_t o1, float* acc, int64_t ldacc,
                             const float* const* xr, int64_t aheadRows) {
  const int32_t* row = c.qw + p * c.outF;
  // the rows aheadRows down, into L2 (past the last row: nothing to fetch)
  const int32_t* ahead = p + aheadRows + (PAIR ? 1 : 0) < c.inF / 8 ? row + aheadRows * c.outF : nullptr;
  for (int64_t o = o0; o < o1; o += 16) {
    __mmask16 mask = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (o1 - o)) - 1);
    if (ahead) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + o), _MM_HINT_T1);
      if constexpr (PAIR) _mm_prefetch(reinterpret_cast<const char*>(ahead + c.outF + o), _MM_HINT_T1);
    }
    float* ao = acc + (o - o0);
    __m512 a[M], b[M];
    for (int m = 0; m < M; m++) {
      a[m] = FIRST ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, ao + m * ldacc);
      b[m] = _mm512_setzero_ps();
    }
    nibbles512<M, false>(_mm512_maskz_loadu_epi32(mask, row + o), xr, 8 * p, nullptr, 0, mask, a);
    if constexpr (PAIR) {
      nibbles512<M, false>(_mm512_maskz_loadu_epi32(mask, row + c.outF + o), xr, 8 * p + 8, nullptr, 0, mask, b);
      for (int m = 0; m < M; m++) a[m] = _mm512_add_ps(a[m], b[m]);
    }
    for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(ao + m * ldacc, mask, a[m]);
  }
}

template <int M>
LONAS_AVX512 void int4GemvGrouped512(const Int4Call& c, int64_t o0, int64_t o1, float* acc) {
  const int64_t n = o1 - o0, rowsPerGroup = c.groupSize / 8, packedRows = c.inF / 8;
  const float* xr[M];
  float* yr[M];
  for (int m = 0; m < M; m++) {
    xr[m] = c.x + m * c.inF;
    yr[m] = c.y + m * c.outF;
    std::fill(yr[m] + o0, yr[m] + o1, 0.0f);
  }
  const __m512 sixteen = _mm512_set1_ps(16.0f);
  const int64_t aheadRows = prefetchRows(n);
  prefetchFirstRows(c, o0, o1, aheadRows);
  for (int64_t p0 = 0, g = 0; p0 < packedRows; p0 += rowsPerGroup, g++) {
    const int64_t p1 = std::min(p0 + rowsPerGroup, packedRows);
    float sx[M];
    for (int m = 0; m < M; m++) sx[m] = sumRange(xr[m], 8 * p0, 8 * p1);
    for (int64_t p = p0; p < p1;) {
      bool first = p == p0, pair = p + 2 <= p1;
      if (pair) {
        if (first) rowPass512<M, true, true>(c, p, o0, o1, acc, n, xr, aheadRows);
        else rowPass512<M, true, false>(c, p, o0, o1, acc, n, xr, aheadRows);
      } else {
        if (first) rowPass512<M, false, true>(c, p, o0, o1, acc, n, xr, aheadRows);
        else rowPass512<M, false, false>(c, p, o0, o1, acc, n, xr, aheadRows);
      }
      p += pair ? 2 : 1;
    }
    // y += s · (16·acc − (16 + z) · Σx)   (= s · Σ x (q − z))
    const float* s = c.sc + g * c.outF;
    const float* z = c.zr + g * c.outF;
    for (int64_t o = o0; o < o1; o += 16) {
      __mmask16 mask = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (o1 - o)) - 1);
      __m512 sv = _mm512_maskz_loadu_ps(mask, s + o);
      __m512 zv = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, z + o), sixteen);
      for (int m = 0; m < M; m++) {
        __m512 t = _mm512_fmsub_ps(sixteen, _mm512_maskz_loadu_ps(mask, acc + m * n + (o - o0)),
                                   _mm512_mul_ps(zv, _mm512_set1_ps(sx[m])));
        _mm512_mask_storeu_ps(yr[m] + o, mask, _mm512_fmadd_ps(sv, t, _mm512_maskz_loadu_ps(mask, yr[m] + o)));
      }
    }
  }
}

// General gIdx: acc = Σ_j x_j · s[g_j] · f_j, then y = 16·acc − Σ_g s[g] · (16 + z[g]) · Σ_{j∈g} x_j.
template <int M>
LONAS_AVX512 void int4GemvAnyGroup512(const Int4Call& c, int64_t o0, int64_t o1, float* acc, float* sxg) {
  const int64_t n = o1 - o0, packedRows = c.inF / 8;
  const float* xr[M];
  for (int m = 0; m < M; m++) xr[m] = c.x + m * c.inF;
  // sxg[m][g] = Σ_{j: gIdx[j] = g} x[m][j]
  std::vector<double> sums(M * c.nGroups, 0.0);
  for (int64_t j = 0; j < c.inF; j++) {
    for (int m = 0; m < M; m++) sums[m * c.nGroups + c.gIdx[j]] += xr[m][j];
  }
  for (int64_t i = 0; i < M * c.nGroups; i++) sxg[i] = static_cast<float>(sums[i]);

  for (int64_t p = 0; p < packedRows; p++) {
    const int32_t* row = c.qw + p * c.outF;
    const float* srow[8];
    for (int k = 0; k < 8; k++) srow[k] = c.sc + c.gIdx[8 * p + k] * c.outF;
    for (int64_t o = o0; o < o1; o += 16) {
      __mmask16 mask = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (o1 - o)) - 1);
      _mm_prefetch(reinterpret_cast<const char*>(row + c.outF + o), _MM_HINT_T0);
      float* ao = acc + (o - o0);
      __m512 a[M];
      for (int m = 0; m < M; m++) a[m] = p == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, ao + m * n);
      nibbles512<M, true>(_mm512_maskz_loadu_epi32(mask, row + o), xr, 8 * p, srow, o, mask, a);
      for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(ao + m * n, mask, a[m]);
    }
  }
  const __m512 sixteen = _mm512_set1_ps(16.0f);
  for (int64_t o = o0; o < o1; o += 16) {
    __mmask16 mask = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (o1 - o)) - 1);
    __m512 t[M];
    for (int m = 0; m < M; m++) {
      t[m] = packedRows == 0 ? _mm512_setzero_ps()
                             : _mm512_mul_ps(sixteen, _mm512_maskz_loadu_ps(mask, acc + m * n + (o - o0)));
    }
    for (int64_t g = 0; g < c.nGroups; g++) {
      __m512 cz = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, c.sc + g * c.outF + o),
                                _mm512_add_ps(_mm512_maskz_loadu_ps(mask, c.zr + g * c.outF + o), sixteen));
      for (int m = 0; m < M; m++) t[m] = _mm512_fnmadd_ps(cz, _mm512_set1_ps(sxg[m * c.nGroups + g]), t[m]);
    }
    for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(c.y + m * c.outF + o, mask, t[m]);
  }
}

// ---- AVX2 (8 outputs per register; the last outF mod 8 outputs go to the scalar version) ----------

template <int K>
LONAS_AVX2 LONAS_INLINE __m256 nib256(__m256i w) {
  const __m256i keep = _mm256_set1_epi32(0x00780000), one = _mm256_set1_epi32(0x3F800000);
  __m256i t;
  if constexpr (K < 5) t = _mm256_slli_epi32(w, 19 - 4 * K);
  else t = _mm256_srli_epi32(w, 4 * K - 19);
  return _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(t, keep), one));
}

template <int M, bool SCALED, int K = 0>
LONAS_AVX2 LONAS_INLINE void nibbles256(__m256i w, const float* const* xr, int64_t j, const float* const* srow,
                                        int64_t o, __m256* a) {
  if constexpr (K < 8) {
    __m256 f = nib256<K>(w);
    if constexpr (SCALED) f = _mm256_mul_ps(f, _mm256_loadu_ps(srow[K] + o));
    for (int m = 0; m < M; m++) a[m] = _mm256_fmadd_ps(f, _mm256_set1_ps(xr[m][j + K]), a[m]);
    nibbles256<M, SCALED, K + 1>(w, xr, j, srow, o, a);
  }
}

// (The AVX2 loop is compute-bound: it keeps the plain next-pair prefetch into L1, which measured ~4% faster
// here than the AVX-512 path's L2 prefetch further ahead.)
template <int M, bool PAIR, bool FIRST>
LONAS_AVX2 void rowPass256(const Int4Call& c, int64_t p, int64_t o0, int64_t o1, float* acc, int64_t ldacc,
                           const float* const* xr) {
  const int32_t* row = c.qw + p * c.outF;
  const int32_t* ahead = row + 2 * c.outF;
  for (int64_t o = o0; o < o1; o += 8) {
    if ((o & 15) == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + o), _MM_HINT_T0);
      if constexpr (PAIR) _mm_prefetch(reinterpret_cast<const char*>(ahead + c.outF + o), _MM_HINT_T0);
    }
    float* ao = acc + (o - o0);
    __m256 a[M], b[M];
    for (int m = 0; m < M; m++) {
      a[m] = FIRST ? _mm256_setzero_ps() : _mm256_loadu_ps(ao + m * ldacc);
      b[m] = _mm256_setzero_ps();
    }
    nibbles256<M, false>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + o)), xr, 8 * p, nullptr, 0, a);
    if constexpr (PAIR) {
      nibbles256<M, false>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c.outF + o)), xr, 8 * p + 8,
                           nullptr, 0, b);
      for (int m = 0; m < M; m++) a[m] = _mm256_add_ps(a[m], b[m]);
    }
    for (int m = 0; m < M; m++) _mm256_storeu_ps(ao + m * ldacc, a[m]);
  }
}

// o1 − o0 must be a multiple of 8.
template <int M>
LONAS_AVX2 void int4GemvGrouped256(const Int4Call& c, int64_t o0, int64_t o1, float* acc) {
  const int64_t n = o1 - o0, rowsPerGroup = c.groupSize / 8, packedRows = c.inF / 8;
  const float* xr[M];
  float* yr[M];
  for (int m = 0; m < M; m++) {
    xr[m] = c.x + m * c.inF;
    yr[m] = c.y + m * c.outF;
    std::fill(yr[m] + o0, yr[m] + o1, 0.0f);
  }
  const __m256 sixteen = _mm256_set1_ps(16.0f);
  for (int64_t p0 = 0, g = 0; p0 < packedRows; p0 += rowsPerGroup, g++) {
    const int64_t p1 = std::min(p0 + rowsPerGroup, packedRows);
    float sx[M];
    for (int m = 0; m < M; m++) sx[m] = sumRange(xr[m], 8 * p0, 8 * p1);
    for (int64_t p = p0; p < p1;) {
      bool first = p == p0, pair = p + 2 <= p1;
      if (pair) {
        if (first) rowPass256<M, true, true>(c, p, o0, o1, acc, n, xr);
        else rowPass256<M, true, false>(c, p, o0, o1, acc, n, xr);
      } else {
        if (first) rowPass256<M, false, true>(c, p, o0, o1, acc, n, xr);
        else rowPass256<M, false, false>(c, p, o0, o1, acc, n, xr);
      }
      p += pair ? 2 : 1;
    }
    const float* s = c.sc + g * c.outF;
    const float* z = c.zr + g * c.outF;
    for (int64_t o = o0; o < o1; o += 8) {
      __m256 sv = _mm256_loadu_ps(s + o);
      __m256 zv = _mm256_add_ps(_mm256_loadu_ps(z + o), sixteen);
      for (int m = 0; m < M; m++) {
        __m256 t = _mm256_fmsub_ps(sixteen, _mm256_loadu_ps(acc + m * n + (o - o0)), _mm256_mul_ps(zv, _mm256_set1_ps(sx[m])));
        _mm256_storeu_ps(yr[m] + o, _mm256_fmadd_ps(sv, t, _mm256_loadu_ps(yr[m] + o)));
      }
    }
  }
}

template <int M>
LONAS_AVX2 void int4GemvAnyGroup256(const Int4Call& c, int64_t o0, int64_t o1, float* acc, float* sxg) {
  const int64_t n = o1 - o0, packedRows = c.inF / 8;
  const float* xr[M];
  for (int m = 0; m < M; m++) xr[m] = c.x + m * c.inF;
  std::vector<double> sums(M * c.nGroups, 0.0);
  for (int64_t j = 0; j < c.inF; j++) {
    for (int m = 0; m < M; m++) sums[m * c.nGroups + c.gIdx[j]] += xr[m][j];
  }
  for (int64_t i = 0; i < M * c.nGroups; i++) sxg[i] = static_cast<float>(sums[i]);
  for (int64_t p = 0; p < packedRows; p++) {
    const int32_t* row = c.qw + p * c.outF;
    const float* srow[8];
    for (int k = 0; k < 8; k++) srow[k] = c.sc + c.gIdx[8 * p + k] * c.outF;
    for (int64_t o = o0; o < o1; o += 8) {
      float* ao = acc + (o - o0);
      __m256 a[M];
      for (int m = 0; m < M; m++) a[m] = p == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(ao + m * n);
      nibbles256<M, true>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + o)), xr, 8 * p, srow, o, a);
      for (int m = 0; m < M; m++) _mm256_storeu_ps(ao + m * n, a[m]);
    }
  }
  const __m256 sixteen = _mm256_set1_ps(16.0f);
  for (int64_t o = o0; o < o1; o += 8) {
    __m256 t[M];
    for (int m = 0; m < M; m++) {
      t[m] = packedRows == 0 ? _mm256_setzero_ps() : _mm256_mul_ps(sixteen, _mm256_loadu_ps(acc + m * n + (o - o0)));
    }
    for (int64_t g = 0; g < c.nGroups; g++) {
      __m256 cz = _mm256_mul_ps(_mm256_loadu_ps(c.sc + g * c.outF + o),
                                _mm256_add_ps(_mm256_loadu_ps(c.zr + g * c.outF + o), sixteen));
      for (int m = 0; m < M; m++) t[m] = _mm256_fnmadd_ps(cz, _mm256_set1_ps(sxg[m * c.nGroups + g]), t[m]);
    }
    for (int m = 0; m < M; m++) _mm256_storeu_ps(c.y + m * c.outF + o, t[m]);
  }
}

// ---- dispatch of the matrix-vector product over an output range ---------------------------------

template <int M>
void int4GemvBlock(const Int4Call& c, Isa isa, int64_t o0, int64_t o1);

// Column blocks whose accumulators (M rows) stay in L1 (≤ 8 KB) while the packed rows stream past (for
// wide layers such as lm_head; measured neutral at 1 row, up to 1.3× faster at 8 rows when cache-resident).
template <int M>
void int4GemvRange(const Int4Call& c, Isa isa, int64_t o0, int64_t o1) {
  const int64_t cols = std::max<int64_t>(64, 8192 / (4 * M) / 16 * 16);
  for (int64_t b = o0; b < o1; b += cols) int4GemvBlock<M>(c, isa, b, std::min(o1, b + cols));
}

template <int M>
void int4GemvBlock(const Int4Call& c, Isa isa, int64_t o0, int64_t o1) {
  if (o0 >= o1) return;
  thread_local std::vector<float> accBuf, sxBuf;
  if (isa == Isa::Avx512) {
    float* acc = scratch(accBuf, M * (o1 - o0));
    if (c.grouped) int4GemvGrouped512<M>(c, o0, o1, acc);
    else int4GemvAnyGroup512<M>(c, o0, o1, acc, scratch(sxBuf, M * c.nGroups));
    return;
  }
  if (isa == Isa::Avx2) {
    int64_t mid = o0 + (o1 - o0) / 8 * 8;
    if (mid > o0) {
      float* acc = scratch(accBuf, M * (mid - o0));
      if (c.grouped) int4GemvGrouped256<M>(c, o0, mid, acc);
      else int4GemvAnyGroup256<M>(c, o0, mid, acc, scratch(sxBuf, M * c.nGroups));
    }
    int4GemvScalar(c, mid, o1);
    return;
  }
  int4GemvScalar(c, o0, o1);
}

void int4Gemv(const Int4Call& c) {
  Isa isa = activeIsa();
  const int threads = gemvThreads(c.inF / 2 * c.outF);
  // pieces of whole 16-output blocks, kChunksPerThread per thread
  const int64_t blocks = (c.outF + 15) / 16;
  const int chunks = static_cast<int>(std::min<int64_t>(blocks, threads == 1 ? 1 : threads * kChunksPerThread));
  auto body = [&](int chunk) {
    int64_t o0 = std::min(c.outF, blocks * chunk / chunks * 16), o1 = std::min(c.outF, blocks * (chunk + 1) / chunks * 16);
    switch (c.M) {
      case 1: int4GemvRange<1>(c, isa, o0, o1); break;
      case 2: int4GemvRange<2>(c, isa, o0, o1); break;
      case 3: int4GemvRange<3>(c, isa, o0, o1); break;
      case 4: int4GemvRange<4>(c, isa, o0, o1); break;
      case 5: int4GemvRange<5>(c, isa, o0, o1); break;
      case 6: int4GemvRange<6>(c, isa, o0, o1); break;
      case 7: int4GemvRange<7>(c, isa, o0, o1); break;
      default: int4GemvRange<8>(c, isa, o0, o1); break;
    }
  };
  parallelChunks(chunks, threads, body);
}

// ---- tile dequantisation + sgemm (M > 4) ---------------------------------------------------------

// bt (tk, tn) = Wᵀ[j0 .. j0+tk, o0 .. o0+tn): bt[jj][o] = (q − z) · s. The same loop is compiled for each
// ISA (auto-vectorised through the target attribute of the wrapper); -ffp-contract=off keeps the two
// roundings, so the values are bit-identical to int4Dequantize.
LONAS_INLINE void dequantTileBody(const Int4Call& c, int64_t j0, int64_t tk, int64_t o0, int64_t tn, float* bt) {
  for (int64_t jj = 0; jj < tk; jj++) {
    const int64_t j = j0 + jj, g = c.gIdx[j];
    const uint32_t* row = reinterpret_cast<const uint32_t*>(c.qw + (j >> 3) * c.outF + o0);
    const float* s = c.sc + g * c.outF + o0;
    const float* z = c.zr + g * c.outF + o0;
    const unsigned shift = 4 * static_cast<unsigned>(j & 7);
    float* dst = bt + jj * tn;
    for (int64_t o = 0; o < tn; o++) dst[o] = (static_cast<float>((row[o] >> shift) & 15u) - z[o]) * s[o];
  }
}
LONAS_AVX512 void dequantTile512(const Int4Call& c, int64_t j0, int64_t tk, int64_t o0, int64_t tn, float* bt) {
  dequantTileBody(c, j0, tk, o0, tn, bt);
}
LONAS_AVX2 void dequantTile256(const Int4Call& c, int64_t j0, int64_t tk, int64_t o0, int64_t tn, float* bt) {
  dequantTileBody(c, j0, tk, o0, tn, bt);
}
void dequantTileScalar(const Int4Call& c, int64_t j0, int64_t tk, int64_t o0, int64_t tn, float* bt) {
  dequantTileBody(c, j0, tk, o0, tn, bt);
}

void int4Gemm(const Int4Call& c) {
  constexpr int64_t kTileFloats = int64_t{1} << 19;  // 2 MB of dequantised weights per sgemm call
  const int64_t tn = std::min<int64_t>(c.outF, 2048);
  const int64_t tk = std::min<int64_t>(c.inF, std::max<int64_t>(8, kTileFloats / tn / 8 * 8));
  thread_local std::vector<float> tileBuf;
  float* bt = scratch(tileBuf, tk * tn);
  Isa isa = activeIsa();
  for (int64_t o0 = 0; o0 < c.outF; o0 += tn) {
    const int64_t n = std::min(tn, c.outF - o0);
    for (int64_t j0 = 0; j0 < c.inF; j0 += tk) {
      const int64_t k = std::min(tk, c.inF - j0);
      if (isa == Isa::Avx512) dequantTile512(c, j0, k, o0, n, bt);
      else if (isa == Isa::Avx2) dequantTile256(c, j0, k, o0, n, bt);
      else dequantTileScalar(c, j0, k, o0, n, bt);
      // y[:, o0:o0+n] (+)= x[:, j0:j0+k] · bt
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(c.M), static_cast<int>(n),
                  static_cast<int>(k), 1.0f, c.x + j0, static_cast<int>(c.inF), bt, static_cast<int>(n),
                  j0 == 0 ? 0.0f : 1.0f, c.y + o0, static_cast<int>(c.outF));
    }
  }
}

// ---- argument validation -----------------------------------------------------------------------

// Checks the packed weight (qweight, scales, zeros, gIdx) for (inF, outF); returns nGroups = max gIdx + 1.
int64_t checkInt4Weight(const Args& args, int64_t inF, int64_t outF, const I32& qweight, const F32& scales,
                        const F32& zeros, const I32& gIdx) {
  if (inF % 8 != 0) {
    args.throwRange("inF = " + std::to_string(inF) + " must be a multiple of 8 (qweight packs 8 input rows per int32)");
  }
  args.need("qweight", qweight.length, args.mul(inF / 8, outF));
  args.need("gIdx", gIdx.length, inF);
  int64_t maxGroup = -1;
  for (int64_t j = 0; j < inF; j++) {
    int64_t g = gIdx.data[j];
    if (g < 0) args.throwRange("gIdx[" + std::to_string(j) + "] = " + std::to_string(g) + " is negative");
    maxGroup = std::max(maxGroup, g);
  }
  const int64_t nGroups = maxGroup + 1;
  const int64_t needed = args.mul(nGroups, outF);
  for (auto [name, length] : {std::pair<const char*, int64_t>{"scales", scales.length}, {"zeros", zeros.length}}) {
    if (length < needed) {
      args.throwRange(std::string("'") + name + "' has " + std::to_string(length) + " elements but " +
                      std::to_string(needed) + " are needed ((max gIdx + 1) · outF = " + std::to_string(nGroups) +
                      " · " + std::to_string(outF) + ")");
    }
  }
  return nGroups;
}

}  // namespace

// int4Linear(x, M, inF, outF, qweight, scales, zeros, gIdx, groupSize, y): y (M, outF) = x (M, inF) · Wᵀ.
void Int4Linear(const Napi::CallbackInfo& info) {
  Args args(info, "int4Linear", 10);
  F32 x = args.f32(0, "x");
  int64_t M = args.blasInt(1, "M"), inF = args.blasInt(2, "inF"), outF = args.blasInt(3, "outF");
  I32 qweight = args.i32(4, "qweight");
  F32 scales = args.f32(5, "scales"), zeros = args.f32(6, "zeros");
  I32 gIdx = args.i32(7, "gIdx");
  int64_t groupSize = args.index(8, "groupSize");
  F32 y = args.f32(9, "y");
  if (groupSize < 1) args.throwRange("groupSize = " + std::to_string(groupSize) + " must be ≥ 1");
  int64_t nGroups = checkInt4Weight(args, inF, outF, qweight, scales, zeros, gIdx);
  args.need("x", x.length, args.mul(M, inF));
  args.need("y", y.length, args.mul(M, outF));
  if (M == 0 || outF == 0) return;
  if (inF == 0) {
    std::fill(y.data, y.data + M * outF, 0.0f);
    return;
  }
  bool grouped = groupSize % 8 == 0;
  for (int64_t j = 0; grouped && j < inF; j++) grouped = gIdx.data[j] == j / groupSize;
  Int4Call c{x.data, M, inF, outF, qweight.data, scales.data, zeros.data, gIdx.data, groupSize, nGroups, grouped, y.data};
  if (M <= kGemvMaxRows) int4Gemv(c);
  else int4Gemm(c);
}

// int4Dequantize(qweight, scales, zeros, gIdx, inF, outF, out): out (outF, inF) = W, exactly
// (float(q) − z) · s per element.
void Int4Dequantize(const Napi::CallbackInfo& info) {
  Args args(info, "int4Dequantize", 7);
  I32 qweight = args.i32(0, "qweight");
  F32 scales = args.f32(1, "scales"), zeros = args.f32(2, "zeros");
  I32 gIdx = args.i32(3, "gIdx");
  int64_t inF = args.index(4, "inF"), outF = args.index(5, "outF");
  F32 out = args.f32(6, "out");
  checkInt4Weight(args, inF, outF, qweight, scales, zeros, gIdx);
  args.need("out", out.length, args.mul(inF, outF));
  // Blocks of 64 outputs keep the 64 destination rows' lines in L1 while p walks down.
  for (int64_t ob = 0; ob < outF; ob += 64) {
    const int64_t oe = std::min(outF, ob + 64);
    for (int64_t p = 0; p < inF / 8; p++) {
      const uint32_t* row = reinterpret_cast<const uint32_t*>(qweight.data + p * outF);
      for (int64_t o = ob; o < oe; o++) {
        float* dst = out.data + o * inF + 8 * p;
        for (int k = 0; k < 8; k++) {
          int64_t g = gIdx.data[8 * p + k];
          dst[k] = dequant(row[o], k, zeros.data[g * outF + o], scales.data[g * outF + o]);
        }
      }
    }
  }
}

}  // namespace lonas
