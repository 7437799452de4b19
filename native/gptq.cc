// gptq.cc — gptqColumns: GPTQ's column loop (AutoGPTQ fasterquant once the inverse-Hessian factor is known),
// float64. TypeScript twin: src/kernels/gptq.ts referenceGptqColumns.
//
// gptqColumns(w, u, mask, out, in, bits, groupSize, blockSize, codes, scales, zeros):
//   w (out, in) float64, columns in quantisation order, overwritten with the error-propagated weights;
//   u (in, in) float64, the upper factor U (Uᵀ U = H⁻¹) in the same order; mask (out, in) uint8 or null
//   (keepZeros: w is multiplied by it after every update); codes (out, in) uint8; scales, zeros (groups, out)
//   float32, groups = ⌈in / groupSize⌉ (groupSize ≥ 1: the caller passes in for one group per row).
// Per block [i1, i2) of blockSize columns, per column c: at a group start (c % groupSize = 0) the row's scale and
// zero from w[r, c : c + groupSize) (Quantizer.find_params: min/max with 0 included, scale = (max − min)/maxq,
// zero = round(−min/scale)); code = clamp(round(w/scale) + zero, 0, maxq); e = (w − scale·(code − zero)) / U[c, c];
// w[r, c:i2] −= e · U[c, c:i2]. After the block the lazy update w[:, i2:] −= E (out, i2 − i1) · U[i1:i2, i2:].
//
// Exactness: inside a block the operations are the twin's, one for one and in its order (no FMA:
// -ffp-contract=off), so a single block gives the twin's weights bit for bit. The lazy update is one OpenBLAS
// dgemm (FMA, its own summation order): the weights then differ from the twin's by float64 rounding (~1e-16
// relative), and a code differs only if a weight lands within that of a rounding boundary (none in the tests).
// That is what AutoGPTQ does too (a float32 matmul); the exact multiply-subtract loop it replaced ran at
// ~30–50 GFLOP/s against dgemm's FMA peak.
//
// Threads: per block, the rows' column chains run on the pool (pieces of rows), then the dgemm on OpenBLAS's.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "multiversion.h"
#include "kernels.h"
#include "pool.h"

namespace lonas {
namespace {

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

constexpr int kRows = 8;  // rows per tile: the lanes of quantizeBlockTile's propagation

// Rows [r0, r0 + nr) (nr ≤ kRows) through the columns [i1, i2) of a block, on a transposed copy of the block,
// tile[k][ρ] = w[r0 + ρ, i1 + k], so that propagating a column's errors to the rest of the block is one
// kRows-wide vector operation per column (the per-element operations are the twin's, in its order): group
// parameters at group starts (from the tile inside the block, from w after it), codes, errors (row ρ's at
// er + ρ·es) and their propagation inside the block. scale / zero: the rows' current group parameters (carried
// across blocks). tile, maskTile: (i2 − i1, kRows) scratch.
LONAS_MULTIVERSION void quantizeBlockTile(const Columns& c, int64_t r0, int nr, int64_t i1, int64_t i2, double* er, int64_t es,
                                          double* scale, double* zero, double* tile, double* maskTile) {
  const int64_t n = c.in, gs = c.groupSize, bw = i2 - i1;
  for (int64_t k = 0; k < bw; k++)
    for (int l = 0; l < kRows; l++) {
      tile[k * kRows + l] = l < nr ? c.w[(r0 + l) * n + i1 + k] : 0;
      if (c.mask) maskTile[k * kRows + l] = l < nr ? c.mask[(r0 + l) * n + i1 + k] : 0;
    }
  for (int64_t col = i1; col < i2; col++) {
    const int64_t k = col - i1;
    if (col % gs == 0)
      for (int l = 0; l < nr; l++) {
        double lo = 0, hi = 0;
        for (int64_t j = col, end = std::min(col + gs, n); j < end; j++) {
          const double v = j < i2 ? tile[(j - i1) * kRows + l] : c.w[(r0 + l) * n + j];
          lo = jsMin(lo, v);
          hi = jsMax(hi, v);
        }
        if (lo == 0 && hi == 0) lo = -1, hi = 1;
        scale[l] = (hi - lo) / c.maxq;
        zero[l] = std::nearbyint(-lo / scale[l]);  // round half to even (the default rounding mode)
        const int64_t g = col / gs;
        c.scales[g * c.out + r0 + l] = static_cast<float>(scale[l]);
        c.zeros[g * c.out + r0 + l] = static_cast<float>(zero[l]);
      }
    const double d = c.u[col * n + col];
    double e[kRows] = {};
    for (int l = 0; l < nr; l++) {
      const double wv = tile[k * kRows + l];
      const double code = jsMin(c.maxq, jsMax(0.0, std::nearbyint(wv / scale[l]) + zero[l]));
      c.codes[(r0 + l) * n + col] = code == code ? static_cast<uint8_t>(code) : 0;  // NaN stored as 0, as a Uint8Array does
      e[l] = (wv - scale[l] * (code - zero[l])) / d;
      er[l * es + k] = e[l];
    }
    const double* uc = c.u + col * n;
    for (int64_t j = k; j < bw; j++) {
      const double uj = uc[i1 + j];
      for (int l = 0; l < kRows; l++) tile[j * kRows + l] -= e[l] * uj;
    }
    if (c.mask)
      for (int64_t j = k + 1; j < bw; j++)
        for (int l = 0; l < kRows; l++) tile[j * kRows + l] *= maskTile[j * kRows + l];
  }
  for (int l = 0; l < nr; l++)
    for (int64_t k = 0; k < bw; k++) c.w[(r0 + l) * n + i1 + k] = tile[k * kRows + l];
}

// Every block in turn: the block's columns on the pool (pieces of rows, kRows interleaved), then the lazy update
// of the columns after it, w[:, i2:] −= E (out, bw) · U[i1:i2, i2:], as one OpenBLAS dgemm (its own threads), then
// the mask. err (out, blockSize), rowScale / rowZero (out): the rows' block errors and current group parameters.
void quantizeColumns(const Columns& c) {
  const int64_t n = c.in, B = c.blockSize, out = c.out;
  std::vector<double> err(out * B), rowScale(out), rowZero(out);
  for (int64_t i1 = 0; i1 < n; i1 += B) {
    const int64_t i2 = std::min(i1 + B, n), bw = i2 - i1;
    parallelFor(out, 16, kRows, [&](int64_t a, int64_t b) {
      std::vector<double> tile(bw * kRows), maskTile(c.mask ? bw * kRows : 0);
      for (int64_t r = a; r < b; r += kRows)
        quantizeBlockTile(c, r, static_cast<int>(std::min<int64_t>(kRows, b - r)), i1, i2, err.data() + r * B, B, rowScale.data() + r,
                          rowZero.data() + r, tile.data(), maskTile.data());
    });
    if (i2 == n) break;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(out), static_cast<int>(n - i2), static_cast<int>(bw), -1.0,
                err.data(), static_cast<int>(B), c.u + i1 * n + i2, static_cast<int>(n), 1.0, c.w + i2, static_cast<int>(n));
    if (c.mask)
      parallelFor(out * (n - i2), kMinPiece, n - i2, [&](int64_t a, int64_t b) {
        for (int64_t r = a / (n - i2); r < b / (n - i2); r++)
          for (int64_t j = i2; j < n; j++) c.w[r * n + j] *= c.mask[r * n + j];
      });
  }
}

}  // namespace

// gptqDequantize(q, scales, zeros, gIdx, out, in, w): w (out, in) float32 = scale · (q − zero) with the row's
// group g = gIdx[j] (scales / zeros (groups, out)); computed in float64 and rounded once, as the twin does.
void GptqDequantize(const Napi::CallbackInfo& info) {
  Args args(info, "gptqDequantize", 7);
  U8 q = args.u8(0, "q");
  F32 scales = args.f32(1, "scales"), zeros = args.f32(2, "zeros");
  I32 gIdx = args.i32(3, "gIdx");
  const int64_t out = args.index(4, "out"), in = args.index(5, "in");
  F32 w = args.f32(6, "w");
  const int64_t size = args.mul(out, in);
  args.need("q", q.length, size);
  args.need("gIdx", gIdx.length, in);
  args.need("w", w.length, size);
  int64_t groups = 0;
  for (int64_t j = 0; j < in; j++) {
    if (gIdx.data[j] < 0) args.throwRange("gIdx[" + std::to_string(j) + "] is negative");
    groups = std::max<int64_t>(groups, gIdx.data[j] + 1);
  }
  args.need("scales", scales.length, args.mul(groups, out));
  args.need("zeros", zeros.length, args.mul(groups, out));
  parallelFor(size, kMinPiece, in, [&](int64_t a, int64_t b) {
    for (int64_t r = a / std::max<int64_t>(in, 1); r < b / std::max<int64_t>(in, 1); r++)
      for (int64_t j = 0; j < in; j++) {
        const int64_t g = gIdx.data[j] * out + r;
        w.data[r * in + j] = static_cast<float>(static_cast<double>(scales.data[g]) * (q.data[r * in + j] - static_cast<double>(zeros.data[g])));
      }
  });
}

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
  quantizeColumns(c);
}

}  // namespace lonas
