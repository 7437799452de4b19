// INT4 matrix-vector product (M ≤ kGemvMaxRows rows of x: decode, small batches) in the GPTQ layout of
// int4.cc, with AVX-512, AVX2 (int4-gemv-avx2.cc; shared pieces in int4-gemv.h) and scalar versions chosen at run
// time (compressed.h).
//
// The packed weights are streamed once, all M rows sharing each unpacked nibble. (Measured on 1536×576: M = 8 costs ~3.5× M = 1,
// while the tile path of int4.cc costs ~10× M = 1 at M = 5..12, so the switch is at 8, not 4.) Per group g and
// output o it uses Σ_j x_j (q − z) s = s · (Σ_j x_j q_j − z Σ_j x_j), vectorised across the
// contiguous output dimension (16 outputs per AVX-512 register, 8 per AVX2 one). Each nibble becomes an
// exact float in at most two vector ops (a 16-entry table lookup, or mask + cvtdq2ps of q·16^k against an
// x pre-scaled by 16^−k; see kNibblePow), then one FMA. qweight is read row after row, two packed rows
// (16 inputs) per pass over a block of outputs whose accumulators stay in L1 (≤ 8 KB), the rows ~8 KB
// ahead prefetched into L2 (kPrefetchBytes); the group's fix-up is folded into its last pass. At M = 1 a
// pass keeps its 16 x values in registers and runs 4 independent FMA chains, and full vectors start at a
// 64-byte-aligned packed word. M = 1, one thread, weights cycled through ≥ 200 MB (Zen 4 EPYC, medians,
// the previous kernel alternating in the same process; GB/s of packed weights + scales + zeros):
// 1536×576 41.8 → 32.5 µs (12.0 → 15.5 GB/s), 576×1536 45.6 → 34.8 µs, 576×576 18.7 → 14.0 µs,
// 192×576 9.2 → 6.6 µs, 49152×576 1335 → 978 µs (16.5 GB/s); the 135M model's 211 linear layers
// ~7.3 → ~5.5 ms per token. From cache the loop takes ~1.75 cycles per 16 weights (it was ~2.3); streamed,
// it is now close to what one core pulls from memory here, and the 4 KB pages' TLB misses cost ~5–10%
// (weights in 2 MB pages would remove most of that: measured in a C++ harness).
// When gIdx is not ⌊j/groupSize⌋ (act-order) a general version multiplies each nibble by its
// group's scale row instead (measured 1.3–1.6× slower; a loader may instead reorder the rows by group
// once, see int4GroupOrder in src/kernels/compressed.ts, and permute x).
//
// Threads: no BLAS is involved here; above 256 KB of weights (gemvThreads) the work is split over the native
// pool (pool.h, setThreads / LONAS_THREADS, default the machine's cores) in pieces of output strips × row
// ranges (rowRanges, int4Gemv).

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_*() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "compressed.h"
#include "int4.h"
#include "int4-gemv.h"

namespace lonas {
namespace {

using namespace int4gemv;

// Software prefetch into L2 about this far ahead in the packed rows of the current column block (the same
// columns, aheadRows rows down). The hardware prefetcher alone lags behind (it stops at every 4 KB page; rows
// of a block are outF·4 bytes apart); at call entry the block's first rows are requested the same way.
// Measured on the 135M model's 211 layers at M = 1, 1 thread, streamed: into L2 ~10% faster than into L1
// (T0); 8 KB ahead ~3% faster than 16 KB (small layers: 192×576 7.4 vs 8.5 µs, fewer prefetches in flight
// at call entry), 32 and 64 KB slower.
constexpr int64_t kPrefetchBytes = 8192;

// Rows ahead for a column block of n outputs: ≈ kPrefetchBytes of the block, at least the next pair.
int64_t prefetchRows(int64_t n) { return std::max<int64_t>(2, kPrefetchBytes / (4 * std::max<int64_t>(n, 1))); }

// Requests the piece's first `rows` packed rows of its columns into L2 (they are not prefetched by the loop).
void prefetchFirstRows(const Int4Call& c, const Piece& pc, int64_t rows) {
  for (int64_t p = pc.p0; p < std::min(pc.p0 + rows, pc.p1); p++) {
    for (int64_t o = pc.o0; o < pc.o1; o += 16) _mm_prefetch(reinterpret_cast<const char*>(c.qw + p * c.outF + o), _MM_HINT_T1);
  }
}

// Outputs before the first whose packed word (int32, so 4-byte aligned) is 64-byte aligned: 0..15.
int64_t alignHead(const int32_t* p) { return (0 - (reinterpret_cast<uintptr_t>(p) >> 2)) & 15; }

float* alignUp64(float* p) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63}); }

// Scratch floats for M rows of n accumulators with a row stride rounded up to 16 floats, shifted by up to
// 15 floats and aligned up to 64 bytes.
int64_t accScratchFloats(int64_t M, int64_t n) { return M * ((n + 15) / 16 * 16) + 32; }

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

// ---- nibble → float, shared by the SIMD versions -------------------------------------------------

// A nibble is turned into an exact float q·16^k (k = kNibblePow[K]) with at most two vector ops and no
// fix-up: K = 0 is looked up in a 16-entry table (AVX-512 vpermps reads only the low 4 bits of each index
// lane); K = 1..6 is masked in place (q·16^K) and converted (cvtdq2ps); K = 7 is shifted down first (q·16^7
// would reach the sign bit). Products stay exact because each x is pre-scaled by 16^−k (scaledX): a power of
// two. Against the float trick used before (q shifted into the mantissa of 1.0f, or'ed with its bits: shift +
// ternary logic, the 1 + q/16 folded into the fix-up), measured per nibble in a cache-resident loop on Zen 4:
// ~12% faster, ~5% faster than that trick mixed with the table on even K (on the whole AVX-512 kernel the
// three are within noise; the AVX2 path, where the trick needs shift + and + or, got ~25% faster). It is also
// more accurate: no 16·Σx(1 + q/16) − 16·Σx cancellation (max error vs the float64 reference ~4× smaller).
constexpr int kNibblePow[8] = {0, 1, 2, 3, 4, 5, 6, 0};

// xs[m·inF + j] = x[m·inF + j] · 16^−kNibblePow[j mod 8] (exact unless x·2^−24 is subnormal, |x| < 2^−102).
void scaledX(const Int4Call& c, float* xs) {
  float scale[8];
  for (int k = 0; k < 8; k++) scale[k] = std::ldexp(1.0f, -4 * kNibblePow[k]);
  for (int64_t i = 0; i < c.M * c.inF; i += 8) {  // inF % 8 == 0
    for (int k = 0; k < 8; k++) xs[i + k] = c.x[i + k] * scale[k];
  }
}

// ---- AVX-512 ----------------------------------------------------------------------------------

// lut[q] = q for q = 0..15.
LONAS_AVX512 LONAS_INLINE __m512 nibTable512() {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// Nibble K of every lane of w as the float q·16^kNibblePow[K].
template <int K>
LONAS_AVX512 LONAS_INLINE __m512 nibf512(__m512i w, __m512 lut) {
  if constexpr (K == 0) return _mm512_permutexvar_ps(w, lut);
  else if constexpr (K == 7) return _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 28));
  else return _mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(15 << (4 * K))));
}

// How a pass sees x: HOIST when its 8·ROWS·M values fit in 16 registers (M = 1), broadcast once per pass;
// otherwise each FMA broadcasts its x from memory, which costs an extra op per FMA on Zen 4 (measured ~20%
// slower per nibble at M = 1).
template <int M, int ROWS>
constexpr bool kHoistX512 = 8 * ROWS * M <= 16;

// a[(r·M + m)·CH + k mod CH] += f(nibble k of w[r]) · xp[m][8r + k] for k = K..7, all rows r of the pass;
// xv holds the hoisted x values ((r·M + m)·8 + k) when HOIST.
template <int M, int ROWS, int K = 0>
LONAS_AVX512 LONAS_INLINE void nibbleRows512(const __m512i* w, __m512 lut, const __m512* xv, const float* const* xp,
                                             __m512* a) {
  if constexpr (K < 8) {
    constexpr int CH = kChains<M, ROWS>;
    for (int r = 0; r < ROWS; r++) {
      const __m512 f = nibf512<K>(w[r], lut);
      for (int m = 0; m < M; m++) {
        __m512 xk;
        if constexpr (kHoistX512<M, ROWS>) xk = xv[(r * M + m) * 8 + K];
        else xk = _mm512_set1_ps(xp[m][8 * r + K]);
        __m512& acc = a[(r * M + m) * CH + K % CH];
        acc = _mm512_fmadd_ps(f, xk, acc);
      }
    }
    nibbleRows512<M, ROWS, K + 1>(w, lut, xv, xp, a);
  }
}

// Loads (MASKED: the lanes in mask, others 0) and stores (MASKED: the lanes in mask) of 16 floats or ints.
// Masked loads and stores are slower (measured: the M = 1 loop ~15% faster without them), so only the edges
// of a pass use them.
template <bool MASKED>
LONAS_AVX512 LONAS_INLINE __m512 load512(const float* p, __mmask16 mask) {
  return MASKED ? _mm512_maskz_loadu_ps(mask, p) : _mm512_loadu_ps(p);
}
template <bool MASKED>
LONAS_AVX512 LONAS_INLINE __m512i load512(const int32_t* p, __mmask16 mask) {
  return MASKED ? _mm512_maskz_loadu_epi32(mask, p) : _mm512_loadu_si512(p);
}
template <bool MASKED>
LONAS_AVX512 LONAS_INLINE void store512(float* p, __mmask16 mask, __m512 v) {
  if (MASKED) _mm512_mask_storeu_ps(p, mask, v);
  else _mm512_storeu_ps(p, v);
}

// What a pass over one group's packed rows p .. p + ROWS − 1 shares across its outputs.
template <int M, int ROWS>
struct Pass512 {
  const int32_t* row;    // qweight row p
  int64_t ld;            // outF: qweight row stride
  const int32_t* ahead;  // the rows to prefetch into L2, or nullptr
  const float* pfS;      // the scale and zero rows to prefetch (the pass before a group's last), or nullptr
  const float* pfZ;
  float* acc;  // acc[m · ldacc + (o − o0)]
  int64_t o0, ldacc;
  const float* xp[M];  // xs[m] + 8p: the scaled inputs of row p
  __m512 xv[kHoistX512<M, ROWS> ? 8 * ROWS * M : 1];  // hoisted x values (see kHoistX512)
};

// The 16 outputs o .. o + 15 (MASKED: those in mask) of a pass, grouped path:
// acc[m][o − o0] (+)= Σ_j x[m][j] · q_j over the pass's 8·ROWS inputs. FIRST (the group's first pass): acc
// starts from 0. LAST (its last pass): instead of storing acc, adds the group's term to y,
// y += s · (acc − z · Σx)   (= s · Σ x (q − z)), so a one-pass group never touches acc.
template <int M, int ROWS, bool FIRST, bool LAST, bool MASKED>
LONAS_AVX512 LONAS_INLINE void rowStep512(const Pass512<M, ROWS>& ps, const GroupFix<M>& fix, int64_t o,
                                          __mmask16 mask) {
  constexpr int CH = kChains<M, ROWS>, NA = ROWS * M * CH;
  const __m512 lut = nibTable512();
  if (ps.pfS) {
    _mm_prefetch(reinterpret_cast<const char*>(ps.pfS + o), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(ps.pfZ + o), _MM_HINT_T1);
  }
  if (ps.ahead) {
    for (int r = 0; r < ROWS; r++) _mm_prefetch(reinterpret_cast<const char*>(ps.ahead + r * ps.ld + o), _MM_HINT_T1);
  }
  float* ao = ps.acc + (o - ps.o0);
  __m512i w[ROWS];
  for (int r = 0; r < ROWS; r++) w[r] = load512<MASKED>(ps.row + r * ps.ld + o, mask);
  __m512 a[NA];
  for (int i = 0; i < NA; i++) a[i] = _mm512_setzero_ps();
  if constexpr (!FIRST) {
    for (int m = 0; m < M; m++) a[m * CH] = load512<MASKED>(ao + m * ps.ldacc, mask);
  }
  nibbleRows512<M, ROWS>(w, lut, ps.xv, ps.xp, a);
  // fold the chains of each m into a[m · CH]: (a0 + a1) + (b0 + b1) for 2 rows × 2 chains
  for (int m = 0; m < M; m++) {
    for (int r = 0; r < ROWS; r++) {
      __m512 t = a[(r * M + m) * CH];
      for (int ch = 1; ch < CH; ch++) t = _mm512_add_ps(t, a[(r * M + m) * CH + ch]);
      a[m * CH] = r == 0 ? t : _mm512_add_ps(a[m * CH], t);
    }
  }
  if constexpr (LAST) {
    const __m512 sv = load512<MASKED>(fix.s + o, mask), zv = load512<MASKED>(fix.z + o, mask);
    for (int m = 0; m < M; m++) {
      const __m512 t = _mm512_fnmadd_ps(zv, _mm512_set1_ps(fix.sx[m]), a[m * CH]);
      store512<MASKED>(fix.yr[m] + o, mask, _mm512_fmadd_ps(sv, t, load512<MASKED>(fix.yr[m] + o, mask)));
    }
  } else {
    for (int m = 0; m < M; m++) store512<MASKED>(ao + m * ps.ldacc, mask, a[m * CH]);
  }
}

// One pass over outputs [o0, o1) for packed rows p .. p + ROWS − 1 of a group (see rowStep512).
template <int M, int ROWS, bool FIRST, bool LAST>
LONAS_AVX512 void rowPass512(const Int4Call& c, int64_t p, int64_t o0, int64_t o1, float* acc, int64_t ldacc,
                             int64_t aheadRows, const GroupFix<M>& fix, bool prefetchFix) {
  Pass512<M, ROWS> ps;
  ps.row = c.qw + p * c.outF;
  ps.ld = c.outF;
  // the rows aheadRows down, into L2, past the piece's last row too (on one thread the next piece is the next
  // row range: stopping at the piece's end cost 576 × 1536 ~20 % at one thread); past the last row: nothing
  ps.ahead = p + aheadRows + ROWS - 1 < c.inF / 8 ? ps.row + aheadRows * c.outF : nullptr;
  ps.pfS = prefetchFix ? fix.s : nullptr;
  ps.pfZ = fix.z;
  ps.acc = acc;
  ps.o0 = o0;
  ps.ldacc = ldacc;
  for (int m = 0; m < M; m++) ps.xp[m] = c.xs + m * c.inF + 8 * p;
  if constexpr (kHoistX512<M, ROWS>) {
    for (int r = 0; r < ROWS; r++) {
      for (int m = 0; m < M; m++) {
        for (int k = 0; k < 8; k++) ps.xv[(r * M + m) * 8 + k] = _mm512_set1_ps(ps.xp[m][8 * r + k]);
      }
    }
  }
  // Full vectors start at the first output whose packed word is 64-byte aligned (every row alike when
  // outF % 16 == 0): typed arrays are often only 16-byte aligned, and loads split across two cache lines
  // measured ~12% slower on the whole model. The outputs before it and after the last full vector are masked.
  const int64_t head = std::min<int64_t>(o1 - o0, alignHead(ps.row + o0));
  const int64_t oFull = o0 + head + (o1 - o0 - head) / 16 * 16;
  if (head > 0) rowStep512<M, ROWS, FIRST, LAST, true>(ps, fix, o0, static_cast<__mmask16>((1u << head) - 1));
  for (int64_t o = o0 + head; o < oFull; o += 16) rowStep512<M, ROWS, FIRST, LAST, false>(ps, fix, o, 0xFFFF);
  if (oFull < o1) {
    rowStep512<M, ROWS, FIRST, LAST, true>(ps, fix, oFull, static_cast<__mmask16>((1u << (o1 - oFull)) - 1));
  }
}

template <int M, int ROWS>
LONAS_AVX512 LONAS_INLINE void rowPassAny512(bool first, bool last, const Int4Call& c, int64_t p, const Piece& pc,
                                             float* acc, int64_t ldacc, int64_t aheadRows, const GroupFix<M>& fix,
                                             bool prefetchFix) {
  const int64_t o0 = pc.o0, o1 = pc.o1;
  if (first) {
    if (last) rowPass512<M, ROWS, true, true>(c, p, o0, o1, acc, ldacc, aheadRows, fix, prefetchFix);
    else rowPass512<M, ROWS, true, false>(c, p, o0, o1, acc, ldacc, aheadRows, fix, prefetchFix);
  } else {
    if (last) rowPass512<M, ROWS, false, true>(c, p, o0, o1, acc, ldacc, aheadRows, fix, prefetchFix);
    else rowPass512<M, ROWS, false, false>(c, p, o0, o1, acc, ldacc, aheadRows, fix, prefetchFix);
  }
}

// The grouped matrix-vector product of a piece: for each of its groups, passes of 2 packed rows (the last
// one alone when the group has an odd number), the group's fix-up folded into its last pass.
// accBuf: accScratchFloats(M, o1 − o0) floats.
template <int M>
LONAS_AVX512 void int4GemvGrouped512(const Int4Call& c, const Piece& pc, float* accBuf) {
  const int64_t o0 = pc.o0, o1 = pc.o1, n = o1 - o0, rowsPerGroup = c.groupSize / 8;
  // acc rows of ldacc = n rounded up to 16 floats, placed so that the full vectors of each pass (from
  // o0 + head, see rowPass512) are 64-byte aligned in acc too
  const int64_t ldacc = (n + 15) / 16 * 16, head = std::min<int64_t>(n, alignHead(c.qw + o0));
  float* acc = alignUp64(accBuf) + ((16 - head) & 15);
  GroupFix<M> fix;
  for (int m = 0; m < M; m++) {
    fix.yr[m] = pc.y + m * c.outF;
    std::fill(fix.yr[m] + o0, fix.yr[m] + o1, 0.0f);
  }
  const int64_t aheadRows = prefetchRows(n);
  prefetchFirstRows(c, pc, aheadRows);
  for (int64_t p0 = pc.p0, g = pc.p0 / rowsPerGroup; p0 < pc.p1; p0 += rowsPerGroup, g++) {
    const int64_t p1 = std::min(p0 + rowsPerGroup, pc.p1);
    for (int m = 0; m < M; m++) fix.sx[m] = sumRange(c.x + m * c.inF, 8 * p0, 8 * p1);
    fix.s = c.sc + g * c.outF;
    fix.z = c.zr + g * c.outF;
    for (int64_t p = p0; p < p1;) {
      const int rows = p + 2 <= p1 ? 2 : 1;
      // the pass before the group's last one also requests the group's scale and zero rows into L2 (the
      // model's layers measured ~4% faster)
      const bool first = p == p0, last = p + rows == p1, prefetchFix = !last && p + rows + 2 >= p1;
      if (rows == 2) rowPassAny512<M, 2>(first, last, c, p, pc, acc, ldacc, aheadRows, fix, prefetchFix);
      else rowPassAny512<M, 1>(first, last, c, p, pc, acc, ldacc, aheadRows, fix, prefetchFix);
      p += rows;
    }
  }
}

// a[m] += f_k · s_k · xs[m][j + k] for the 8 nibbles of w, s_k the scale row of input j + k at o (general-gIdx
// path).
template <int M, int K = 0>
LONAS_AVX512 LONAS_INLINE void scaledNibbles512(__m512i w, __m512 lut, const float* xs, int64_t inF, int64_t j,
                                                const float* const* srow, int64_t o, __mmask16 mask, __m512* a) {
  if constexpr (K < 8) {
    const __m512 f = _mm512_mul_ps(nibf512<K>(w, lut), _mm512_maskz_loadu_ps(mask, srow[K] + o));
    for (int m = 0; m < M; m++) a[m] = _mm512_fmadd_ps(f, _mm512_set1_ps(xs[m * inF + j + K]), a[m]);
    scaledNibbles512<M, K + 1>(w, lut, xs, inF, j, srow, o, mask, a);
  }
}

// General gIdx: acc = Σ_j x_j · s[g_j] · q_j, then y = acc − Σ_g s[g] · z[g] · Σ_{j∈g} x_j.
template <int M>
LONAS_AVX512 void int4GemvAnyGroup512(const Int4Call& c, int64_t o0, int64_t o1, float* acc, float* sxg) {
  const int64_t n = o1 - o0, packedRows = c.inF / 8;
  groupSums(c, sxg);

  const __m512 lut = nibTable512();
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
      scaledNibbles512<M>(_mm512_maskz_loadu_epi32(mask, row + o), lut, c.xs, c.inF, 8 * p, srow, o, mask, a);
      for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(ao + m * n, mask, a[m]);
    }
  }
  for (int64_t o = o0; o < o1; o += 16) {
    __mmask16 mask = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (o1 - o)) - 1);
    __m512 t[M];
    for (int m = 0; m < M; m++) {
      t[m] = packedRows == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, acc + m * n + (o - o0));
    }
    for (int64_t g = 0; g < c.nGroups; g++) {
      __m512 sz = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, c.sc + g * c.outF + o),
                                _mm512_maskz_loadu_ps(mask, c.zr + g * c.outF + o));
      for (int m = 0; m < M; m++) t[m] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(sxg[m * c.nGroups + g]), t[m]);
    }
    for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(c.y + m * c.outF + o, mask, t[m]);
  }
}

// ---- dispatch of the matrix-vector product over pieces ------------------------------------------

template <int M>
void int4GemvBlock(const Int4Call& c, Isa isa, const Piece& pc);

// Column blocks whose accumulators (M rows) stay in L1 (≤ 8 KB) while the packed rows stream past (for
// wide layers such as lm_head; measured neutral at 1 row, up to 1.3× faster at 8 rows when cache-resident).
template <int M>
void int4GemvRange(const Int4Call& c, Isa isa, const Piece& pc) {
  const int64_t cols = std::max<int64_t>(64, 8192 / (4 * M) / 16 * 16);
  for (int64_t b = pc.o0; b < pc.o1; b += cols) int4GemvBlock<M>(c, isa, {b, std::min(pc.o1, b + cols), pc.p0, pc.p1, pc.y});
}

// The general-gIdx and scalar versions take whole products only (rowRanges gives them one range into c.y).
template <int M>
void int4GemvBlock(const Int4Call& c, Isa isa, const Piece& pc) {
  const int64_t o0 = pc.o0, o1 = pc.o1;
  if (o0 >= o1) return;
  thread_local std::vector<float> accBuf, sxBuf;
  if (isa == Isa::Avx512) {
    if (c.grouped) int4GemvGrouped512<M>(c, pc, scratch(accBuf, accScratchFloats(M, o1 - o0)));
    else int4GemvAnyGroup512<M>(c, o0, o1, scratch(accBuf, M * (o1 - o0)), scratch(sxBuf, M * c.nGroups));
    return;
  }
  if (isa == Isa::Avx2) {
    int64_t mid = o0 + (o1 - o0) / 8 * 8;
    if (mid > o0) {
      float* acc = scratch(accBuf, M * (mid - o0));
      if (c.grouped) int4GemvGrouped256<M>(c, pc, o0, mid, acc);
      else int4GemvAnyGroup256<M>(c, o0, mid, acc, scratch(sxBuf, M * c.nGroups));
    }
    int4GemvScalar(c, mid, o1);
    return;
  }
  int4GemvScalar(c, o0, o1);
}

// Row ranges of a product: a grouped product of at least kGemvSplitBytes of codes is cut along its inputs
// into R ranges of whole groups, each summed into its own partial y, the partials then added in range order.
// A thread then streams whole packed rows, one contiguous block of memory, where a split of the outputs alone
// gives it a short run of every row (576 outputs over 8 pieces: 288 bytes of each 2304-byte row). Measured on
// the 2-core Zen 4 (a noisy day), M = 1, weights streamed, medians of 5 rounds in 2–4 interleaved runs against
// the output split alone: 2 threads 1536×576 29–34 → 24–28 µs, 576×1536 37–41 → 27–31 µs; one thread ≈ 1×
// (576×1536 ~4 % slower: 44 vs 42 µs); the 135M model's 2-thread decode, INT4 everything 135–143 → 157–172
// tokens/s (measured on a first version that stopped prefetching at each range's end, 0.93× at one thread),
// INT4 projections 94 → 100–108 (this version; one thread ≈ 1×, 78–82 → 82–83). At M = 8 (batched decode) the partials cost a serial
// pass over (R − 1)·8·outF floats: one thread ~8 % slower (1536×576 155–161 → 170–177 µs), two threads mixed to
// faster (576×1536 126–182 → 101–114 µs; 1536×576 92–144 → 102–105); M = 4 ≈ 1× at one thread, as fast or
// faster at two (576×1536 70–91 → 54–56 µs). R depends only on the shape and the ISA, never on the thread
// count, so results stay bit-identical at any count. R = min(groups, codes / 64 KB, ⌈8192 / outF⌉):
// 1536 × 576 → 5, 576 × 1536 → 6; wide products (the LM head, outF ≥ 8192) keep R = 1, their strips being
// long already.
// Groups of whole packed rows in a grouped product (the last one may be short).
int64_t packedGroups(const Int4Call& c) { return (c.inF / 8 + c.groupSize / 8 - 1) / (c.groupSize / 8); }

int64_t rowRanges(const Int4Call& c, Isa isa) {
  const int64_t bytes = c.inF / 2 * c.outF;
  if (!c.grouped || isa == Isa::Scalar || bytes < kGemvSplitBytes || c.outF == 0) return 1;
  return std::max<int64_t>(1, std::min({packedGroups(c), bytes / (int64_t{64} << 10), (8191 + c.outF) / c.outF}));
}

}  // namespace

void int4Gemv(const Int4Call& call) {
  const Isa isa = activeIsa();
  thread_local std::vector<float> xsBuf, partBuf;
  Int4Call c = call;
  if (isa != Isa::Scalar) {
    float* xs = scratch(xsBuf, c.M * c.inF);
    scaledX(c, xs);
    c.xs = xs;
  }
  const int threads = gemvThreads(c.inF / 2 * c.outF);
  const int64_t R = rowRanges(c, isa), packedRows = c.inF / 8, rowsPerGroup = c.groupSize / 8;
  const int64_t groups = R == 1 ? 1 : packedGroups(c);
  // range 0 sums into y, range r ≥ 1 into part + (r − 1)·M·outF
  float* part = R == 1 ? nullptr : scratch(partBuf, (R - 1) * c.M * c.outF);
  // S strips of whole 16-output blocks per range: with one range kChunksPerThread pieces per thread; with
  // several, about 2 pieces per thread in all (the 2-core figures above: one strip per range at 2 threads)
  const int64_t blocks = (c.outF + 15) / 16;
  const int64_t want = threads == 1 ? 1 : R == 1 ? int64_t{threads} * kChunksPerThread : (2 * threads + R - 1) / R;
  const int64_t S = std::max<int64_t>(1, std::min(blocks, want));
  auto body = [&](int chunk) {
    const int64_t r = chunk / S, s = chunk % S;
    Piece pc;
    pc.o0 = std::min(c.outF, blocks * s / S * 16);
    pc.o1 = std::min(c.outF, blocks * (s + 1) / S * 16);
    pc.p0 = R == 1 ? 0 : groups * r / R * rowsPerGroup;
    pc.p1 = R == 1 ? packedRows : std::min(packedRows, groups * (r + 1) / R * rowsPerGroup);
    pc.y = r == 0 ? c.y : part + (r - 1) * c.M * c.outF;
    switch (c.M) {
      case 1: int4GemvRange<1>(c, isa, pc); break;
      case 2: int4GemvRange<2>(c, isa, pc); break;
      case 3: int4GemvRange<3>(c, isa, pc); break;
      case 4: int4GemvRange<4>(c, isa, pc); break;
      case 5: int4GemvRange<5>(c, isa, pc); break;
      case 6: int4GemvRange<6>(c, isa, pc); break;
      case 7: int4GemvRange<7>(c, isa, pc); break;
      default: int4GemvRange<8>(c, isa, pc); break;
    }
  };
  parallelChunks(static_cast<int>(R * S), threads, body);
  // y += the partials, in range order (a serial pass over (R − 1)·M·outF floats: ~1 µs for 1536 × 5)
  const int64_t n = c.M * c.outF;
  for (int64_t r = 1; r < R; r++) {
    const float* pr = part + (r - 1) * n;
    for (int64_t i = 0; i < n; i++) c.y[i] += pr[i];
  }
}

}  // namespace lonas
