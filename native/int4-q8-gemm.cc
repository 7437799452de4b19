// INT4 × int8-activation product for M > kGemvMaxRows rows of x (prefill), AVX512-VNNI: compute mode
// "int8-act" (an APPROXIMATION; the math and the quantisation of x are int4-q8.cc's, the layout int4.cc's).
//
// Per row m, output o, block b of group g it computes the same exact integers A_b[o] and the same float
// operations in the same order as int4-q8.cc's matrix-vector kernel:
//   G = fma(float(A_b), d_b, G) over the blocks of g from 0,  y = fma(s_g, fma(−z_g, SD_g, G), y) over g from 0
// so every row of y is bit-identical to that row computed alone (a prompt's prefill and its decode steps see
// the same approximation; test/kernels/int4-int8act.test.ts checks it).
//
// Register tile: kTileRows rows of x × kTileVecs vectors of 16 outputs. Per packed row (8 inputs) of the
// tile's outputs the weight words are loaded once and split into their low and high nibbles (4 bytes each,
// the inputs 8p + 0, 2, 4, 6 and 8p + 1, 3, 5, 7: int4-q8.cc), then every row of the tile adds them against its
// broadcast x bytes with two vpdpbusd: the unpacking is shared by the tile's rows. A block's sums (int32) and
// its group's float accumulators G stay in registers; y is read and written once per group. Tiles walk the
// rows of x (all M) for one column panel of kTileVecs·16 outputs before the next panel, so the panel's packed
// weights (inF/2 · 32 bytes: 9 KB at inF = 576, 24 KB at 1536) stay in L1 across the row tiles.
//
// Measured (M = 128, one thread, Xeon with AVX512-VNNI, a machine shared at load 7–10, so best of 15 samples):
// 6 × 2 vectors 241 GFLOP/s at 1536×576 (gate/up), 180 at 576×1536 (down), 201 at 576×576; 5 × 2 and 4 × 3
// the same within noise (240, 188, 203 / 243, 175, 200); 8 × 1 and 12 × 1 slower (214, 41, 183 / 50, 154,
// 172). The exact path (tiles dequantised to float, sgemm) reached ~58–125 on the same shapes.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "compressed.h"
#include "int4.h"

#define LONAS_VNNI512 __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace lonas {
namespace {

constexpr int kTileRows = 6;
constexpr int kTileVecs = 2;
constexpr int64_t kPanel = 16 * kTileVecs;  // outputs per column panel

// y rows [m0, m0 + MR) at outputs [o, o + 32) (MASKED: the lanes of mask[v] in vector v, the rest untouched).
template <int MR, bool MASKED>
LONAS_VNNI512 void q8Tile(const Int4Call& c, const Q8X& q, int64_t m0, int64_t o, const __mmask16* mask) {
  const __m512i low = _mm512_set1_epi32(0x0F0F0F0F);
  const int64_t packedRows = c.inF / 8, rowsPerGroup = c.groupSize / 8;
  const int32_t* xpk = q.xpk + m0 * packedRows * 2;  // (MR, packedRows, 2)
  __m512 G[MR][kTileVecs];
  for (int64_t p0 = 0, g = 0; p0 < packedRows; p0 += rowsPerGroup, g++) {
    const int64_t p1 = std::min(packedRows, p0 + rowsPerGroup);
    for (int64_t pb = p0; pb < p1; pb += kRowsPerBlock) {
      const int64_t pe = std::min(p1, pb + kRowsPerBlock);
      __m512i A[MR][kTileVecs];
      for (int m = 0; m < MR; m++) {
        for (int v = 0; v < kTileVecs; v++) A[m][v] = _mm512_setzero_si512();
      }
      for (int64_t p = pb; p < pe; p++) {
        const int32_t* row = c.qw + p * c.outF + o;
        __m512i lo[kTileVecs], hi[kTileVecs];
        for (int v = 0; v < kTileVecs; v++) {
          const __m512i w = MASKED ? _mm512_maskz_loadu_epi32(mask[v], row + 16 * v) : _mm512_loadu_si512(row + 16 * v);
          lo[v] = _mm512_and_si512(w, low);
          hi[v] = _mm512_and_si512(_mm512_srli_epi32(w, 4), low);
        }
        for (int m = 0; m < MR; m++) {
          const __m512i xe = _mm512_set1_epi32(xpk[(m * packedRows + p) * 2]);
          const __m512i xo = _mm512_set1_epi32(xpk[(m * packedRows + p) * 2 + 1]);
          for (int v = 0; v < kTileVecs; v++) {
            A[m][v] = _mm512_dpbusd_epi32(A[m][v], lo[v], xe);
            A[m][v] = _mm512_dpbusd_epi32(A[m][v], hi[v], xo);
          }
        }
      }
      const int64_t b = pb / kRowsPerBlock;
      for (int m = 0; m < MR; m++) {
        const __m512 dv = _mm512_set1_ps(q.d[(m0 + m) * q.nBlocks + b]);
        for (int v = 0; v < kTileVecs; v++) {
          G[m][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(A[m][v]), dv, pb == p0 ? _mm512_setzero_ps() : G[m][v]);
        }
      }
    }
    // the group's fix-up: y = fma(s, fma(−z, SD_g, G), y)
    __m512 sv[kTileVecs], zv[kTileVecs];
    for (int v = 0; v < kTileVecs; v++) {
      const int64_t i = g * c.outF + o + 16 * v;
      sv[v] = MASKED ? _mm512_maskz_loadu_ps(mask[v], c.sc + i) : _mm512_loadu_ps(c.sc + i);
      zv[v] = MASKED ? _mm512_maskz_loadu_ps(mask[v], c.zr + i) : _mm512_loadu_ps(c.zr + i);
    }
    for (int m = 0; m < MR; m++) {
      const __m512 sdv = _mm512_set1_ps(q.sd[(m0 + m) * c.nGroups + g]);
      float* ym = c.y + (m0 + m) * c.outF + o;
      for (int v = 0; v < kTileVecs; v++) {
        const __m512 t = _mm512_fnmadd_ps(zv[v], sdv, G[m][v]);
        const __m512 y0 = g == 0 ? _mm512_setzero_ps() : MASKED ? _mm512_maskz_loadu_ps(mask[v], ym + 16 * v) : _mm512_loadu_ps(ym + 16 * v);
        const __m512 y1 = _mm512_fmadd_ps(sv[v], t, y0);
        if (MASKED) _mm512_mask_storeu_ps(ym + 16 * v, mask[v], y1);
        else _mm512_storeu_ps(ym + 16 * v, y1);
      }
    }
  }
}

// The last rows (fewer than kTileRows) of a panel, as one tile of that many rows.
template <bool MASKED, int MR = kTileRows - 1>
void q8TailTile(const Int4Call& c, const Q8X& q, int64_t m0, int64_t o, const __mmask16* mask, int64_t rows) {
  if constexpr (MR > 0) {
    if (rows == MR) q8Tile<MR, MASKED>(c, q, m0, o, mask);
    else q8TailTile<MASKED, MR - 1>(c, q, m0, o, mask, rows);
  }
}

template <bool MASKED>
void q8Panel(const Int4Call& c, const Q8X& q, int64_t o, const __mmask16* mask) {
  int64_t m0 = 0;
  for (; m0 + kTileRows <= c.M; m0 += kTileRows) q8Tile<kTileRows, MASKED>(c, q, m0, o, mask);
  q8TailTile<MASKED>(c, q, m0, o, mask, c.M - m0);
}

}  // namespace

void q8GemmVnni(const Int4Call& c, const Q8X& q, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; o += kPanel) {
    const int64_t n = std::min(kPanel, o1 - o);
    __mmask16 mask[kTileVecs];
    for (int v = 0; v < kTileVecs; v++) {
      const int64_t lanes = std::clamp<int64_t>(n - 16 * v, 0, 16);
      mask[v] = static_cast<__mmask16>((uint32_t{1} << lanes) - 1);
    }
    if (n == kPanel) q8Panel<false>(c, q, o, mask);
    else q8Panel<true>(c, q, o, mask);
  }
}

}  // namespace lonas
