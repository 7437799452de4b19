// gptq.cc — gptqColumns: GPTQ's column loop (AutoGPTQ fasterquant once the inverse-Hessian factor is known),
// float64, with exactly the operations of its TypeScript twin (src/kernels/gptq.ts referenceGptqColumns), so
// codes, scales, zeros and the updated weights are equal bit for bit.
//
// gptqColumns(w, u, mask, out, in, bits, groupSize, blockSize, codes, scales, zeros):
//   w (out, in) float64, columns in quantisation order, overwritten with the error-propagated weights;
//   u (in, in) float64, the upper factor U (Uᵀ U = H⁻¹) in the same order; mask (out, in) uint8 or null
//   (keepZeros: w is multiplied by it after every update); codes (out, in) uint8; scales, zeros (groups, out)
//   float32, groups = ⌈in / groupSize⌉ (groupSize ≥ 1: the caller passes in for one group per row).
// Per block [i1, i2) of blockSize columns, per column c: at a group start (c % groupSize = 0) the row's scale and
// zero from w[r, c : c + groupSize) (Quantizer.find_params: min/max with 0 included, scale = (max − min)/maxq,
// zero = round(−min/scale)); code = clamp(round(w/scale) + zero, 0, maxq); e = (w − scale·(code − zero)) / U[c, c];
// w[r, c:i2] −= e · U[c, c:i2]. After the block the lazy update w[:, i2:] −= E (out, i2 − i1) · U[i1:i2, i2:],
// summed term by term in k order with a multiply and a subtract each (no FMA: -ffp-contract=off), which is what
// keeps it equal to the twin's loops. That costs ~2× the flops of an FMA dgemm, traded for exact equality.
//
// Threads: rows are independent through the whole loop, so pieces of rows run on the pool (pool.h), each through
// every block. The lazy update packs U[i1:i2, j:j+256] into contiguous (i2 − i1, 16) panels (256 KB: L2) and runs
// every row tile of the piece along them, 8 rows × 16 columns held in registers over the block's k.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "compressed.h"
#include "multiversion.h"
#include "kernels.h"
#include "pool.h"

namespace lonas {
namespace {

// Generic vectors of 8 doubles (one zmm) where AVX-512 is on, of 4 (one ymm) otherwise: a 64-byte vector in the
// AVX2 clone is split through the stack (4096 × 4096 columns on Zen 3: 45 s against 2.2 s).
typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));

template <typename V>
inline V loadv(const double* p) {
  V x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

// JavaScript's Math.min / Math.max (the twin's): NaN wins and −0 < +0 — the sign of a zero reaches the stored zero point.
inline double jsMin(double a, double b) {
  if (a < b) return a;
  if (b < a) return b;
  if (a != a || b != b) return a != a ? a : b;
  return std::signbit(a) ? a : b;
}
inline double jsMax(double a, double b) {
  if (a > b) return a;
  if (b > a) return b;
  if (a != a || b != b) return a != a ? a : b;
  return std::signbit(a) ? b : a;
}

struct Columns {
  double* w;
  const double* u;
  const uint8_t* mask;
  int64_t out, in, groupSize, blockSize;
  double maxq;
  uint8_t* codes;
  float* scales;
  float* zeros;
};

constexpr int kRows = 8;        // rows interleaved by quantizeBlockRows (hides its serial chain's latency)
constexpr int kCols = 16;       // columns per register tile and per packed U panel
constexpr int kPanels = 16;     // panels packed at a time: (blockSize 128) × 256 columns × 8 B = 256 KB, L2

// w[r, 0:16] −= Σ_k e[r, k] · panel[k, 0:16] for NR rows (w row stride ld; e row stride es), k in order, in
// vectors V: NR · 16 / lanes accumulators (8 rows of v8d: 16 of AVX-512's 32 zmm; 2 rows of v4d: 8 of AVX2's 16 ymm).
template <int NR, typename V>
LONAS_MULTIVERSION void lazyTile(double* w, int64_t ld, const double* panel, const double* e, int64_t es, int64_t bw) {
  constexpr int L = sizeof(V) / sizeof(double), NV = kCols / L;
  V acc[NR][NV];
  for (int r = 0; r < NR; r++)
    for (int c = 0; c < NV; c++) acc[r][c] = loadv<V>(w + r * ld + c * L);
  for (int64_t k = 0; k < bw; k++) {
    V u[NV];
    for (int c = 0; c < NV; c++) u[c] = loadv<V>(panel + k * kCols + c * L);
    for (int r = 0; r < NR; r++) {
      const double ek = e[r * es + k];
      for (int c = 0; c < NV; c++) acc[r][c] -= ek * u[c];
    }
  }
  for (int r = 0; r < NR; r++)
    for (int c = 0; c < NV; c++) std::memcpy(w + r * ld + c * L, &acc[r][c], sizeof(V));
}

// Rows [r0, r0 + nr) through the columns [i1, i2) of a block, column by column with the rows interleaved (each
// row's column chain is a serial dependency — divide, round, propagate — so nr rows in flight hide its latency):
// group parameters at group starts, codes, errors (row ρ's at er + ρ·es) and their propagation inside the block.
// scale / zero: the rows' current group parameters (carried across blocks).
LONAS_MULTIVERSION void quantizeBlockRows(const Columns& c, int64_t r0, int nr, int64_t i1, int64_t i2, double* er, int64_t es,
                                          double* scale, double* zero) {
  const int64_t n = c.in, gs = c.groupSize;
  for (int64_t col = i1; col < i2; col++) {
    const bool groupStart = col % gs == 0;
    const double d = c.u[col * n + col];
    const double* uc = c.u + col * n;
    for (int rr = 0; rr < nr; rr++) {
      const int64_t r = r0 + rr;
      double* wr = c.w + r * n;
      if (groupStart) {
        double lo = 0, hi = 0;
        for (int64_t k = col, end = std::min(col + gs, n); k < end; k++) {
          lo = jsMin(lo, wr[k]);
          hi = jsMax(hi, wr[k]);
        }
        if (lo == 0 && hi == 0) lo = -1, hi = 1;
        scale[rr] = (hi - lo) / c.maxq;
        zero[rr] = std::nearbyint(-lo / scale[rr]);  // round half to even (the default rounding mode)
        const int64_t g = col / gs;
        c.scales[g * c.out + r] = static_cast<float>(scale[rr]);
        c.zeros[g * c.out + r] = static_cast<float>(zero[rr]);
      }
      const double wv = wr[col];
      const double code = jsMin(c.maxq, jsMax(0.0, std::nearbyint(wv / scale[rr]) + zero[rr]));
      c.codes[r * n + col] = code == code ? static_cast<uint8_t>(code) : 0;  // NaN stored as 0, as a Uint8Array does
      const double e = (wv - scale[rr] * (code - zero[rr])) / d;
      er[rr * es + col - i1] = e;
      for (int64_t j = col; j < i2; j++) wr[j] -= e * uc[j];
      if (c.mask) {
        const uint8_t* mr = c.mask + r * n;
        for (int64_t j = col + 1; j < i2; j++) wr[j] *= mr[j];
      }
    }
  }
}

// Rows [a, b) through every block. err (b − a, blockSize), rowScale / rowZero (b − a), panel (kPanels, blockSize, 16):
// the piece's scratch.
void quantizeRows(const Columns& c, int64_t a, int64_t b) {
  const int64_t n = c.in, B = c.blockSize, rows = b - a;
  std::vector<double> err(rows * B), rowScale(rows), rowZero(rows), panel(B * kCols * kPanels);
  for (int64_t i1 = 0; i1 < n; i1 += B) {
    const int64_t i2 = std::min(i1 + B, n);
    for (int64_t r = a; r < b; r += kRows) {
      const int nr = static_cast<int>(std::min<int64_t>(kRows, b - r));
      quantizeBlockRows(c, r, nr, i1, i2, err.data() + (r - a) * B, B, rowScale.data() + (r - a), rowZero.data() + (r - a));
    }
    // lazy update of columns [i2, n): U[i1:i2, i2:] packed kPanels panels of (bw, 16) at a time; each row tile of
    // the piece runs along those panels (its W rows read in order, the panels from L2); the last (n − i2) mod 16
    // columns straight from U, scalar
    const int64_t bw = i2 - i1, tail = i2 + (n - i2) / kCols * kCols;
    for (int64_t j0 = i2; j0 < tail; j0 += kCols * kPanels) {
      const int64_t panels = std::min<int64_t>(kPanels, (tail - j0) / kCols);
      for (int64_t p = 0; p < panels; p++)
        for (int64_t k = 0; k < bw; k++)
          std::memcpy(panel.data() + (p * bw + k) * kCols, c.u + (i1 + k) * n + j0 + p * kCols, sizeof(double) * kCols);
      int64_t r = a;
      if (activeIsa() == Isa::Avx512)
        for (; r + 8 <= b; r += 8)
          for (int64_t p = 0; p < panels; p++)
            lazyTile<8, v8d>(c.w + r * n + j0 + p * kCols, n, panel.data() + p * bw * kCols, err.data() + (r - a) * B, B, bw);
      for (; r + 2 <= b; r += 2)
        for (int64_t p = 0; p < panels; p++)
          lazyTile<2, v4d>(c.w + r * n + j0 + p * kCols, n, panel.data() + p * bw * kCols, err.data() + (r - a) * B, B, bw);
      for (; r < b; r++)
        for (int64_t p = 0; p < panels; p++)
          lazyTile<1, v4d>(c.w + r * n + j0 + p * kCols, n, panel.data() + p * bw * kCols, err.data() + (r - a) * B, B, bw);
    }
    for (int64_t r = a; r < b; r++) {
      double* wr = c.w + r * n;
      const double* er = err.data() + (r - a) * B;
      for (int64_t j = tail; j < n; j++) {
        double x = wr[j];
        for (int64_t k = 0; k < bw; k++) x -= er[k] * c.u[(i1 + k) * n + j];
        wr[j] = x;
      }
      if (c.mask)
        for (int64_t j = i2; j < n; j++) wr[j] *= c.mask[r * n + j];
    }
  }
}

}  // namespace

void GptqColumns(const Napi::CallbackInfo& info) {
  Args args(info, "gptqColumns", 11);
  F64 w = args.f64(0, "w");
  F64 u = args.f64(1, "u");
  U8 mask = args.u8OrNull(2, "mask");
  const int64_t out = args.index(3, "out"), in = args.index(4, "in"), bits = args.index(5, "bits");
  const int64_t groupSize = args.index(6, "groupSize"), blockSize = args.index(7, "blockSize");
  U8 codes = args.u8(8, "codes");
  F32 scales = args.f32(9, "scales"), zeros = args.f32(10, "zeros");
  if (bits < 2 || bits > 8) args.throwRange("bits = " + std::to_string(bits) + " must be 2..8");
  if (groupSize < 1) args.throwRange("groupSize must be ≥ 1 (pass in for one group per row)");
  if (blockSize < 1) args.throwRange("blockSize must be ≥ 1");
  const int64_t size = args.mul(out, in), groups = in == 0 ? 0 : (in + groupSize - 1) / groupSize;
  args.need("w", w.length, size);
  args.need("u", u.length, args.mul(in, in));
  if (mask.data) args.need("mask", mask.length, size);
  args.need("codes", codes.length, size);
  args.need("scales", scales.length, args.mul(groups, out));
  args.need("zeros", zeros.length, args.mul(groups, out));
  const Columns c{w.data, u.data, mask.data, out, in, groupSize, blockSize, static_cast<double>((1 << bits) - 1), codes.data,
                  scales.data, zeros.data};
  // a piece of ≥ 16 rows in whole register tiles: the U slabs are re-read once per piece
  parallelFor(out, 16, kRows, [&](int64_t a, int64_t b) { quantizeRows(c, a, b); });
}

}  // namespace lonas
