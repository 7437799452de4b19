// INT4 product with int8 activations (compute mode "int8-act", an APPROXIMATION): x is
// quantised per block of kQ8Block = 32 inputs to int8 with a float scale, the 4-bit codes are multiplied by
// the int8 values with integer dot products (AVX512-VNNI vpdpbusd; AVX2 vpmaddubsw + vpmaddwd), and the float
// group scales and zeros are applied after — what llama.cpp does for Q4_0 × Q8_0. The weights are exact; only
// x is rounded (≤ half a step of its block's scale per element). Layout and exact path: int4.cc, int4-gemv.cc.
//
// Math, per row m of x, block b (inputs 32b .. 32b + 31, inside one group g since groupSize % 32 == 0):
//   d_b = amax_b / 127 (float),  xq_j = rint(x_j · (1/d_b)) ∈ [−127, 127]  (0 when amax_b = 0)
//   A_b[o] = Σ_{j∈b} xq_j · q_j[o]   (exact int32),   S_b = Σ_{j∈b} xq_j,   SD_g = float(Σ_{b∈g} d_b · S_b)
//   G_g[o] = fma(float(A_b[o]), d_b, G_g[o]) over the blocks of g in order, from 0
//   y[o]   = fma(s_g[o], fma(−z_g[o], SD_g, G_g[o]), y[o]) over the groups in order, from 0
// i.e. y ≈ Σ_g s_g Σ_{j∈g} d_b xq_j (q_j − z_g). Every version (VNNI, AVX2, scalar) computes these exact
// integers and these float operations in this order, so they agree bit for bit; the TypeScript twin
// (src/kernels/compressed.ts) follows the same formula in float64 with float32 rounding at each step.
//
// Applies to any number of rows M with contiguous groups (gIdx = ⌊j/groupSize⌋) whose size is a multiple of
// 32; int4Linear runs every other call exactly (the rule is int8ActApplies, and the twin uses the same rule).
// M ≤ kGemvMaxRows (decode) runs this file's matrix-vector kernel; M > kGemvMaxRows (prefill) runs the
// register-tiled kernel of int4-q8-gemm.cc with AVX512-VNNI, else this kernel 8 rows at a time. Each row of y
// depends only on its row of x, bit for bit, whichever kernel runs and however the call is split.
//
// Nibble order: packed word p of output o holds inputs 8p + k in bits 4k..4k+3, so its bytes' low nibbles
// are inputs 8p + 0, 2, 4, 6 and the high nibbles 8p + 1, 3, 5, 7. (w & 0x0F0F0F0F) and ((w >> 4) & 0x0F0F0F0F)
// are 4 unsigned bytes each, multiplied with the x bytes packed in the same order (xpk) by one vpdpbusd.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common.h"
#include "compressed.h"
#include "int4.h"

#define LONAS_VNNI512 __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace lonas {
namespace {

// Round to nearest, ties to even, for |v| < 2^22, in the default rounding mode (as cvtps2dq and nearbyint; a
// plain add/sub pair vectorises, a nearbyint call per element cost ~3 µs at inF = 576).
inline float roundEven(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23
  return (v + kMagic) - kMagic;
}

// One block of n ≤ 32 inputs of x: its scale (returned), the int8 values in the packed order (per packed row
// the bytes of the even inputs 0, 2, 4, 6, then of the odd ones) in dst, their sum in *sum.
float quantBlockScalar(const float* x, int64_t n, int8_t* dst, int32_t* sum) {
  float amax = 0.0f, bad = 0.0f;
  for (int64_t j = 0; j < n; j++) {
    amax = std::max(amax, std::fabs(x[j]));
    bad += x[j] * 0.0f;  // NaN if any x is NaN or infinite
  }
  // a NaN or infinite input makes its block's scale NaN, so the outputs are NaN (not silently finite)
  const bool finite = bad == 0.0f;
  const float db = finite ? amax / 127.0f : NAN, id = finite && amax > 0.0f ? 1.0f / db : 0.0f;
  int8_t q[kQ8Block] = {};
  *sum = 0;
  for (int64_t j = 0; j < n; j++) {
    const float r = std::max(-127.0f, std::min(127.0f, roundEven(finite ? x[j] * id : 0.0f)));
    q[j] = static_cast<int8_t>(r);
    *sum += q[j];
  }
  for (int64_t p = 0; p < n / 8; p++) {
    for (int i = 0; i < 4; i++) {
      dst[8 * p + i] = q[8 * p + 2 * i];
      dst[8 * p + 4 + i] = q[8 * p + 2 * i + 1];
    }
  }
  return db;
}

// A whole block of 32 finite inputs with AVX-512 (false, untouched outputs, if one is NaN or infinite): the
// same values as quantBlockScalar — max is exact, x · id the same product, cvtps2dq rounds to nearest even
// as roundEven does (|x · id| ≤ 127.5 ≪ 2^22), and the clamp happens in int32. (The scalar loop cost ~1.4 ns
// per input: ~185 µs of a 128 × 576 prompt's call, more than the 192-output kernel itself.)
LONAS_VNNI512 bool quantBlock512(const float* x, int8_t* dst, int32_t* sum, float* db) {
  const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16), zero = _mm512_setzero_ps();
  const __mmask16 fa = _mm512_cmp_ps_mask(_mm512_mul_ps(a, zero), zero, _CMP_EQ_OQ);
  const __mmask16 fb = _mm512_cmp_ps_mask(_mm512_mul_ps(b, zero), zero, _CMP_EQ_OQ);
  if ((fa & fb) != 0xFFFF) return false;
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  *db = amax / 127.0f;
  const __m512 id = _mm512_set1_ps(amax > 0.0f ? 1.0f / *db : 0.0f);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  const __m512i qa = _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(a, id))));
  const __m512i qb = _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(b, id))));
  *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
  const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_shuffle_epi8(_mm512_cvtepi32_epi8(qa), order));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_shuffle_epi8(_mm512_cvtepi32_epi8(qb), order));
  return true;
}

// Rows [m0, m1) of x quantised into xpk, d, sd (each row on its own: the rows may be split over threads).
void quantizeX(const Int4Call& c, int32_t* xpk, float* d, float* sd, int64_t nBlocks, int64_t m0, int64_t m1) {
  const int64_t packedRows = c.inF / 8, blocksPerGroup = c.groupSize / kQ8Block;
  const bool simd = q8Vnni512();
  for (int64_t m = m0; m < m1; m++) {
    const float* x = c.x + m * c.inF;
    double groupSum = 0;
    for (int64_t b = 0; b < nBlocks; b++) {
      const int64_t j0 = b * kQ8Block, n = std::min(c.inF, j0 + kQ8Block) - j0;
      int8_t* dst = reinterpret_cast<int8_t*>(xpk + (m * packedRows + j0 / 8) * 2);
      int32_t sum;
      float db;
      if (!(simd && n == kQ8Block && quantBlock512(x + j0, dst, &sum, &db))) db = quantBlockScalar(x + j0, n, dst, &sum);
      d[m * nBlocks + b] = db;
      groupSum += static_cast<double>(db) * sum;
      if ((b + 1) % blocksPerGroup == 0 || b + 1 == nBlocks) {
        sd[m * c.nGroups + b / blocksPerGroup] = static_cast<float>(groupSum);
        groupSum = 0;
      }
    }
  }
}

// ---- scalar -------------------------------------------------------------------------------------------

void q8Scalar(const Int4Call& c, const Q8X& q, int64_t o0, int64_t o1) {
  const int64_t packedRows = c.inF / 8, rowsPerGroup = c.groupSize / 8;
  for (int64_t m = 0; m < c.M; m++) {
    const int8_t* xb = reinterpret_cast<const int8_t*>(q.xpk + m * packedRows * 2);  // (packedRows, 8): even bytes, odd bytes
    for (int64_t o = o0; o < o1; o++) {
      float y = 0.0f;
      for (int64_t p0 = 0, g = 0; p0 < packedRows; p0 += rowsPerGroup, g++) {
        const int64_t p1 = std::min(packedRows, p0 + rowsPerGroup);
        float G = 0.0f;
        for (int64_t b0 = p0; b0 < p1; b0 += kRowsPerBlock) {
          int32_t A = 0;
          for (int64_t p = b0; p < std::min(p1, b0 + kRowsPerBlock); p++) {
            const uint32_t w = static_cast<uint32_t>(c.qw[p * c.outF + o]);
            for (int i = 0; i < 4; i++) {
              A += static_cast<int32_t>((w >> (8 * i)) & 15u) * xb[p * 8 + i];
              A += static_cast<int32_t>((w >> (8 * i + 4)) & 15u) * xb[p * 8 + 4 + i];
            }
          }
          G = std::fma(static_cast<float>(A), q.d[m * q.nBlocks + b0 / kRowsPerBlock], G);
        }
        const float t = std::fma(-c.zr[g * c.outF + o], q.sd[m * c.nGroups + g], G);
        y = std::fma(c.sc[g * c.outF + o], t, y);
      }
      c.y[m * c.outF + o] = y;
    }
  }
}

// ---- SIMD versions: a column block of outputs at a time, its packed rows streamed in order ----------------
//
// Like the exact kernel (int4-gemv.cc), the packed rows are read one after another over a column block of
// outputs whose float accumulators (G, M rows) stay in L1; per 16 (AVX2: 8) outputs a block's ≤ 4 packed rows
// are loaded together and their integer sums stay in registers. (A first version walked all rows of a
// 64-output register tile before the next tile: measured 1.3–1.9× slower than the exact kernel, streamed.)
// The rows ~8 KB ahead in the block are prefetched into L2 (as int4-gemv.cc, kPrefetchBytes).

constexpr int64_t kPrefetchBytes = 8192;

// What one call shares: the column block [o0, o1), its accumulators G (M rows of stride ldg), the prefetch
// distance in packed rows.
struct Q8Block {
  int64_t o0, o1;
  float* G;
  int64_t ldg;
  int64_t aheadRows;
};

// Integer sums of packed rows p .. p + rows − 1 (rows ≤ 4) at the 16 outputs o.. (lanes in mask), then
// G = fma(float(A), d_b, G) (FIRST: G from 0), and at a group's LAST block y = fma(s, fma(−z, SD_g, G), y).
template <int M, bool FIRST, bool LAST, bool MASKED>
LONAS_VNNI512 LONAS_INLINE void q8Step512(const Int4Call& c, const Q8X& q, const Q8Block& blk, int64_t p, int rows,
                                          int64_t b, int64_t g, int64_t o, __mmask16 mask) {
  const __m512i low = _mm512_set1_epi32(0x0F0F0F0F);
  __m512i A[M * 2];  // per row of x: even-input and odd-input sums
  for (int i = 0; i < M * 2; i++) A[i] = _mm512_setzero_si512();
  const int64_t packedRows = c.inF / 8;
  for (int r = 0; r < rows; r++) {
    const int32_t* row = c.qw + (p + r) * c.outF + o;
    if (p + r + blk.aheadRows < packedRows) _mm_prefetch(reinterpret_cast<const char*>(row + blk.aheadRows * c.outF), _MM_HINT_T1);
    const __m512i w = MASKED ? _mm512_maskz_loadu_epi32(mask, row) : _mm512_loadu_si512(row);
    // hi keeps the odd nibbles in place (16·q): one op instead of a shift and a mask; its sums are exact
    // multiples of 16, shifted down once per block (|16·Σ q x| ≤ 16·16·15·127 per lane: no overflow)
    const __m512i lo = _mm512_and_si512(w, low), hi = _mm512_andnot_si512(low, w);
    for (int m = 0; m < M; m++) {
      const int32_t* xp = q.xpk + (m * packedRows + p + r) * 2;
      A[m * 2] = _mm512_dpbusd_epi32(A[m * 2], lo, _mm512_set1_epi32(xp[0]));
      A[m * 2 + 1] = _mm512_dpbusd_epi32(A[m * 2 + 1], hi, _mm512_set1_epi32(xp[1]));
    }
  }
  const __m512 sv = LAST ? _mm512_maskz_loadu_ps(mask, c.sc + g * c.outF + o) : _mm512_setzero_ps();
  const __m512 zv = LAST ? _mm512_maskz_loadu_ps(mask, c.zr + g * c.outF + o) : _mm512_setzero_ps();
  for (int m = 0; m < M; m++) {
    const __m512i a = _mm512_add_epi32(A[m * 2], _mm512_srai_epi32(A[m * 2 + 1], 4));
    float* gm = blk.G + m * blk.ldg + (o - blk.o0);
    const __m512 G0 = FIRST ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, gm);
    const __m512 G = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(q.d[m * q.nBlocks + b]), G0);
    if constexpr (LAST) {
      float* ym = c.y + m * c.outF + o;
      const __m512 t = _mm512_fnmadd_ps(zv, _mm512_set1_ps(q.sd[m * c.nGroups + g]), G);
      _mm512_mask_storeu_ps(ym, mask, _mm512_fmadd_ps(sv, t, _mm512_maskz_loadu_ps(mask, ym)));
    } else {
      _mm512_mask_storeu_ps(gm, mask, G);
    }
  }
}

template <int M, bool FIRST, bool LAST>
LONAS_VNNI512 void q8Pass512(const Int4Call& c, const Q8X& q, const Q8Block& blk, int64_t p, int rows, int64_t b, int64_t g) {
  int64_t o = blk.o0;
  for (; o + 16 <= blk.o1; o += 16) q8Step512<M, FIRST, LAST, false>(c, q, blk, p, rows, b, g, o, 0xFFFF);
  if (o < blk.o1) q8Step512<M, FIRST, LAST, true>(c, q, blk, p, rows, b, g, o, static_cast<__mmask16>((1u << (blk.o1 - o)) - 1));
}

// ---- AVX2: vpmaddubsw (u8 · s8 pairs → int16, |sum| ≤ 2·15·127: no saturation) + vpmaddwd with ones ---------

template <int M, bool FIRST, bool LAST>
LONAS_AVX2 void q8Pass256(const Int4Call& c, const Q8X& q, const Q8Block& blk, int64_t p, int rows, int64_t b, int64_t g) {
  const __m256i low = _mm256_set1_epi32(0x0F0F0F0F), ones = _mm256_set1_epi16(1);
  const int64_t packedRows = c.inF / 8;
  for (int64_t o = blk.o0; o < blk.o1; o += 8) {  // o1 − o0 a multiple of 8
    __m256i A[M];
    for (int m = 0; m < M; m++) A[m] = _mm256_setzero_si256();
    for (int r = 0; r < rows; r++) {
      const int32_t* row = c.qw + (p + r) * c.outF + o;
      if ((o & 15) == 0 && p + r + blk.aheadRows < packedRows) _mm_prefetch(reinterpret_cast<const char*>(row + blk.aheadRows * c.outF), _MM_HINT_T1);
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      const __m256i lo = _mm256_and_si256(w, low), hi = _mm256_and_si256(_mm256_srli_epi32(w, 4), low);
      for (int m = 0; m < M; m++) {
        const int32_t* xp = q.xpk + (m * packedRows + p + r) * 2;
        const __m256i e = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xp[0]));
        const __m256i f = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xp[1]));
        A[m] = _mm256_add_epi32(A[m], _mm256_madd_epi16(_mm256_add_epi16(e, f), ones));
      }
    }
    for (int m = 0; m < M; m++) {
      float* gm = blk.G + m * blk.ldg + (o - blk.o0);
      const __m256 G0 = FIRST ? _mm256_setzero_ps() : _mm256_loadu_ps(gm);
      const __m256 G = _mm256_fmadd_ps(_mm256_cvtepi32_ps(A[m]), _mm256_set1_ps(q.d[m * q.nBlocks + b]), G0);
      if constexpr (LAST) {
        float* ym = c.y + m * c.outF + o;
        const __m256 t = _mm256_fnmadd_ps(_mm256_loadu_ps(c.zr + g * c.outF + o), _mm256_set1_ps(q.sd[m * c.nGroups + g]), G);
        _mm256_storeu_ps(ym, _mm256_fmadd_ps(_mm256_loadu_ps(c.sc + g * c.outF + o), t, _mm256_loadu_ps(ym)));
      } else {
        _mm256_storeu_ps(gm, G);
      }
    }
  }
}

// The product over the column block: y = 0, then per group its blocks of ≤ 4 packed rows in order.
template <int M, bool VNNI>
void q8Columns(const Int4Call& c, const Q8X& q, const Q8Block& blk) {
  for (int m = 0; m < M; m++) std::fill(c.y + m * c.outF + blk.o0, c.y + m * c.outF + blk.o1, 0.0f);
  const int64_t packedRows = c.inF / 8, rowsPerGroup = c.groupSize / 8;
  for (int64_t p0 = 0, g = 0; p0 < packedRows; p0 += rowsPerGroup, g++) {
    const int64_t p1 = std::min(packedRows, p0 + rowsPerGroup);
    for (int64_t p = p0; p < p1; p += kRowsPerBlock) {
      const int rows = static_cast<int>(std::min(kRowsPerBlock, p1 - p));
      const bool first = p == p0, last = p + rows == p1;
      const int64_t b = p / kRowsPerBlock;
      auto pass = [&](auto f, auto l) {
        if constexpr (VNNI) q8Pass512<M, decltype(f)::value, decltype(l)::value>(c, q, blk, p, rows, b, g);
        else q8Pass256<M, decltype(f)::value, decltype(l)::value>(c, q, blk, p, rows, b, g);
      };
      using T = std::true_type;
      using F = std::false_type;
      if (first) last ? pass(T{}, T{}) : pass(T{}, F{});
      else last ? pass(F{}, T{}) : pass(F{}, F{});
    }
  }
}

// Outputs [o0, o1) in column blocks whose M rows of accumulators take ≤ 8 KB of L1.
template <int M>
void q8Range(const Int4Call& c, const Q8X& q, Isa isa, int64_t o0, int64_t o1) {
  thread_local std::vector<float> gBuf;
  const int64_t cols = std::max<int64_t>(64, 2048 / M / 16 * 16);
  float* G = scratch(gBuf, M * cols);
  const bool vnni = isa == Isa::Avx512 && q8Vnni512();
  for (int64_t b0 = o0; b0 < o1; b0 += cols) {
    const int64_t b1 = std::min(o1, b0 + cols);
    // AVX2: whole vectors of 8, the rest scalar
    const int64_t mid = vnni ? b1 : isa != Isa::Scalar ? b0 + (b1 - b0) / 8 * 8 : b0;
    const Q8Block blk{b0, mid, G, cols, std::max<int64_t>(kRowsPerBlock, kPrefetchBytes / (4 * std::max<int64_t>(1, mid - b0)))};
    if (mid > b0) {
      if (vnni) q8Columns<M, true>(c, q, blk);
      else q8Columns<M, false>(c, q, blk);
    }
    if (mid < b1) q8Scalar(c, q, mid, b1);
  }
}


// Rows of x at a time through the matrix-vector kernel when the register-tiled one does not run (M ≤ 8, or
// no AVX512-VNNI): the rows are independent, so any split gives the same y.
void q8Rows(const Int4Call& c, const Q8X& q, Isa isa, int64_t o0, int64_t o1) {
  const int64_t packedRows = c.inF / 8;
  for (int64_t m0 = 0; m0 < c.M; m0 += kGemvMaxRows) {
    Int4Call r = c;
    r.M = std::min(kGemvMaxRows, c.M - m0);
    r.x = c.x + m0 * c.inF;
    r.y = c.y + m0 * c.outF;
    const Q8X qr{q.xpk + m0 * packedRows * 2, q.d + m0 * q.nBlocks, q.sd + m0 * c.nGroups, q.nBlocks};
    switch (r.M) {
      case 1: q8Range<1>(r, qr, isa, o0, o1); break;
      case 2: q8Range<2>(r, qr, isa, o0, o1); break;
      case 3: q8Range<3>(r, qr, isa, o0, o1); break;
      case 4: q8Range<4>(r, qr, isa, o0, o1); break;
      case 5: q8Range<5>(r, qr, isa, o0, o1); break;
      case 6: q8Range<6>(r, qr, isa, o0, o1); break;
      case 7: q8Range<7>(r, qr, isa, o0, o1); break;
      default: q8Range<8>(r, qr, isa, o0, o1); break;
    }
  }
}

}  // namespace

bool q8Vnni512() {
  static const bool has = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return has && activeIsa() == Isa::Avx512;
}

bool int8ActApplies(const Int4Call& c) { return c.grouped && c.groupSize % kQ8Block == 0; }

void int4LinearInt8Act(const Int4Call& c) {
  const Isa isa = activeIsa();
  const int64_t packedRows = c.inF / 8, nBlocks = (c.inF + kQ8Block - 1) / kQ8Block;
  thread_local std::vector<int32_t> xpkBuf;
  thread_local std::vector<float> dBuf, sdBuf;
  if (static_cast<int64_t>(xpkBuf.size()) < c.M * packedRows * 2) xpkBuf.resize(c.M * packedRows * 2);
  int32_t* xpk = xpkBuf.data();
  float* d = scratch(dBuf, c.M * nBlocks);
  float* sd = scratch(sdBuf, c.M * c.nGroups);
  parallelFor(c.M * c.inF, kMinPiece, c.inF, [&](int64_t i0, int64_t i1) { quantizeX(c, xpk, d, sd, nBlocks, i0 / c.inF, i1 / c.inF); });
  const Q8X q{xpk, d, sd, nBlocks};
  const bool tiled = c.M > kGemvMaxRows && q8Vnni512();
  const int threads = gemvThreads(c.inF / 2 * c.outF * (tiled ? c.M : 1));
  const int64_t quantum = tiled ? 32 : 64;  // the register tile's outputs; the matrix-vector kernel's column tiles
  const int64_t blocks = (c.outF + quantum - 1) / quantum;
  const int chunks = static_cast<int>(std::min<int64_t>(blocks, threads == 1 ? 1 : threads * kChunksPerThread));
  parallelChunks(chunks, threads, [&](int chunk) {
    const int64_t o0 = std::min(c.outF, blocks * chunk / chunks * quantum), o1 = std::min(c.outF, blocks * (chunk + 1) / chunks * quantum);
    if (tiled) q8GemmVnni(c, q, o0, o1);
    else q8Rows(c, q, isa, o0, o1);
  });
}

}  // namespace lonas
