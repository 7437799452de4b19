// The AVX2 + FMA version of the INT4 matrix-vector product (int4-gemv.cc has the layout, the nibble trick, the
// AVX-512 version it mirrors and the dispatch): 8 outputs per register, the last outF mod 8 outputs left to the
// scalar version.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "int4-gemv.h"

namespace lonas {
namespace int4gemv {
namespace {

// Nibble K of every lane of w as the float q·16^kNibblePow[K] (int4-gemv.cc; no 16-entry table in AVX2: K = 0
// masked too).
template <int K>
LONAS_AVX2 LONAS_INLINE __m256 nibf256(__m256i w) {
  if constexpr (K == 7) return _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 28));
  else return _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(15 << (4 * K))));
}

// a[(r·M + m)·CH + k mod CH] += f(nibble k of w[r]) · xp[m][8r + k] for k = K..7 (x broadcast from memory:
// 16 ymm registers are too few to hoist them).
template <int M, int ROWS, int K = 0>
LONAS_AVX2 LONAS_INLINE void nibbleRows256(const __m256i* w, const float* const* xp, __m256* a) {
  if constexpr (K < 8) {
    constexpr int CH = kChains<M, ROWS>;
    for (int r = 0; r < ROWS; r++) {
      const __m256 f = nibf256<K>(w[r]);
      for (int m = 0; m < M; m++) {
        __m256& acc = a[(r * M + m) * CH + K % CH];
        acc = _mm256_fmadd_ps(f, _mm256_set1_ps(xp[m][8 * r + K]), acc);
      }
    }
    nibbleRows256<M, ROWS, K + 1>(w, xp, a);
  }
}

// One pass over outputs [o0, o1) (o1 − o0 a multiple of 8) for packed rows p .. p + ROWS − 1 of a group, as
// rowStep512. (The AVX2 loop keeps the plain next-pair prefetch into L1, which measured ~4% faster here than
// the AVX-512 path's L2 prefetch further ahead.)
template <int M, int ROWS, bool FIRST, bool LAST>
LONAS_AVX2 void rowPass256(const Int4Call& c, int64_t p, int64_t o0, int64_t o1, float* acc, int64_t ldacc,
                           const GroupFix<M>& fix) {
  constexpr int CH = kChains<M, ROWS>, NA = ROWS * M * CH;
  const int32_t* row = c.qw + p * c.outF;
  const int32_t* ahead = row + ROWS * c.outF;
  const float* xp[M];
  for (int m = 0; m < M; m++) xp[m] = c.xs + m * c.inF + 8 * p;
  for (int64_t o = o0; o < o1; o += 8) {
    if ((o & 15) == 0) {
      for (int r = 0; r < ROWS; r++) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * c.outF + o), _MM_HINT_T0);
    }
    float* ao = acc + (o - o0);
    __m256i w[ROWS];
    for (int r = 0; r < ROWS; r++) w[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + r * c.outF + o));
    __m256 a[NA];
    for (int i = 0; i < NA; i++) a[i] = _mm256_setzero_ps();
    if constexpr (!FIRST) {
      for (int m = 0; m < M; m++) a[m * CH] = _mm256_loadu_ps(ao + m * ldacc);
    }
    nibbleRows256<M, ROWS>(w, xp, a);
    for (int m = 0; m < M; m++) {
      for (int r = 0; r < ROWS; r++) {
        __m256 t = a[(r * M + m) * CH];
        for (int ch = 1; ch < CH; ch++) t = _mm256_add_ps(t, a[(r * M + m) * CH + ch]);
        a[m * CH] = r == 0 ? t : _mm256_add_ps(a[m * CH], t);
      }
    }
    if constexpr (LAST) {
      const __m256 sv = _mm256_loadu_ps(fix.s + o), zv = _mm256_loadu_ps(fix.z + o);
      for (int m = 0; m < M; m++) {
        const __m256 t = _mm256_fnmadd_ps(zv, _mm256_set1_ps(fix.sx[m]), a[m * CH]);
        _mm256_storeu_ps(fix.yr[m] + o, _mm256_fmadd_ps(sv, t, _mm256_loadu_ps(fix.yr[m] + o)));
      }
    } else {
      for (int m = 0; m < M; m++) _mm256_storeu_ps(ao + m * ldacc, a[m * CH]);
    }
  }
}

template <int M, int ROWS>
LONAS_AVX2 LONAS_INLINE void rowPassAny256(bool first, bool last, const Int4Call& c, int64_t p, int64_t o0,
                                           int64_t o1, float* acc, const GroupFix<M>& fix) {
  const int64_t n = o1 - o0;
  if (first) {
    if (last) rowPass256<M, ROWS, true, true>(c, p, o0, o1, acc, n, fix);
    else rowPass256<M, ROWS, true, false>(c, p, o0, o1, acc, n, fix);
  } else {
    if (last) rowPass256<M, ROWS, false, true>(c, p, o0, o1, acc, n, fix);
    else rowPass256<M, ROWS, false, false>(c, p, o0, o1, acc, n, fix);
  }
}

// Packed rows per pass: 2 while the M·2 accumulators fit in the 16 ymm registers with room to spare, else 1
// (2 rows at M = 8 spilled: measured ~30% slower than 1 row).
template <int M>
constexpr int kPassRows256 = M <= 6 ? 2 : 1;

template <int M, int K = 0>
LONAS_AVX2 LONAS_INLINE void scaledNibbles256(__m256i w, const float* xs, int64_t inF, int64_t j,
                                              const float* const* srow, int64_t o, __m256* a) {
  if constexpr (K < 8) {
    const __m256 f = _mm256_mul_ps(nibf256<K>(w), _mm256_loadu_ps(srow[K] + o));
    for (int m = 0; m < M; m++) a[m] = _mm256_fmadd_ps(f, _mm256_set1_ps(xs[m * inF + j + K]), a[m]);
    scaledNibbles256<M, K + 1>(w, xs, inF, j, srow, o, a);
  }
}

}  // namespace

// The piece's outputs [o0, o1) (o1 − o0 a multiple of 8; the piece's own o1 may be larger).
template <int M>
LONAS_AVX2 void int4GemvGrouped256(const Int4Call& c, const Piece& pc, int64_t o0, int64_t o1, float* acc) {
  const int64_t rowsPerGroup = c.groupSize / 8;
  GroupFix<M> fix;
  for (int m = 0; m < M; m++) {
    fix.yr[m] = pc.y + m * c.outF;
    std::fill(fix.yr[m] + o0, fix.yr[m] + o1, 0.0f);
  }
  for (int64_t p0 = pc.p0, g = pc.p0 / rowsPerGroup; p0 < pc.p1; p0 += rowsPerGroup, g++) {
    const int64_t p1 = std::min(p0 + rowsPerGroup, pc.p1);
    for (int m = 0; m < M; m++) fix.sx[m] = sumRange(c.x + m * c.inF, 8 * p0, 8 * p1);
    fix.s = c.sc + g * c.outF;
    fix.z = c.zr + g * c.outF;
    for (int64_t p = p0; p < p1;) {
      const int rows = p + kPassRows256<M> <= p1 ? kPassRows256<M> : 1;
      if (rows == 2) rowPassAny256<M, kPassRows256<M>>(p == p0, p + rows == p1, c, p, o0, o1, acc, fix);
      else rowPassAny256<M, 1>(p == p0, p + rows == p1, c, p, o0, o1, acc, fix);
      p += rows;
    }
  }
}

template <int M>
LONAS_AVX2 void int4GemvAnyGroup256(const Int4Call& c, int64_t o0, int64_t o1, float* acc, float* sxg) {
  const int64_t n = o1 - o0, packedRows = c.inF / 8;
  groupSums(c, sxg);
  for (int64_t p = 0; p < packedRows; p++) {
    const int32_t* row = c.qw + p * c.outF;
    const float* srow[8];
    for (int k = 0; k < 8; k++) srow[k] = c.sc + c.gIdx[8 * p + k] * c.outF;
    for (int64_t o = o0; o < o1; o += 8) {
      float* ao = acc + (o - o0);
      __m256 a[M];
      for (int m = 0; m < M; m++) a[m] = p == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(ao + m * n);
      scaledNibbles256<M>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + o)), c.xs, c.inF, 8 * p, srow,
                          o, a);
      for (int m = 0; m < M; m++) _mm256_storeu_ps(ao + m * n, a[m]);
    }
  }
  for (int64_t o = o0; o < o1; o += 8) {
    __m256 t[M];
    for (int m = 0; m < M; m++) t[m] = packedRows == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + m * n + (o - o0));
    for (int64_t g = 0; g < c.nGroups; g++) {
      __m256 sz = _mm256_mul_ps(_mm256_loadu_ps(c.sc + g * c.outF + o), _mm256_loadu_ps(c.zr + g * c.outF + o));
      for (int m = 0; m < M; m++) t[m] = _mm256_fnmadd_ps(sz, _mm256_set1_ps(sxg[m * c.nGroups + g]), t[m]);
    }
    for (int m = 0; m < M; m++) _mm256_storeu_ps(c.y + m * c.outF + o, t[m]);
  }
}

#define LONAS_INT4_GEMV_AVX2(M)                                                              \
  template void int4GemvGrouped256<M>(const Int4Call&, const Piece&, int64_t, int64_t, float*); \
  template void int4GemvAnyGroup256<M>(const Int4Call&, int64_t, int64_t, float*, float*);
LONAS_INT4_GEMV_AVX2(1)
LONAS_INT4_GEMV_AVX2(2)
LONAS_INT4_GEMV_AVX2(3)
LONAS_INT4_GEMV_AVX2(4)
LONAS_INT4_GEMV_AVX2(5)
LONAS_INT4_GEMV_AVX2(6)
LONAS_INT4_GEMV_AVX2(7)
LONAS_INT4_GEMV_AVX2(8)

}  // namespace int4gemv
}  // namespace lonas
