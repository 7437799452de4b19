// Internal to the INT4 matrix-vector product (int4-gemv.cc: the AVX-512 and scalar versions and the dispatch;
// int4-gemv-avx2.cc: the AVX2 version): what both files share.
#pragma once
#include <cstdint>
#include <vector>

#include "common.h"
#include "int4.h"

namespace lonas {
namespace int4gemv {

// One piece of a product: outputs [o0, o1) over packed rows [p0, p1) (whole groups), its result (M rows of
// stride outF) written to y: the call's y, or a row range's partial sums (see int4Gemv).
struct Piece {
  int64_t o0, o1, p0, p1;
  float* y;
};

// Σ_j x[j] over [j0, j1) in double.
inline float sumRange(const float* x, int64_t j0, int64_t j1) { return static_cast<float>(sumF64(x + j0, j1 - j0)); }

// sxg (M, nGroups): sxg[m][g] = Σ_{j: gIdx[j] = g} x[m][j], summed in double (the general-gIdx paths' fix-up).
inline void groupSums(const Int4Call& c, float* sxg) {
  std::vector<double> sums(c.M * c.nGroups, 0.0);
  for (int64_t j = 0; j < c.inF; j++) {
    for (int64_t m = 0; m < c.M; m++) sums[m * c.nGroups + c.gIdx[j]] += c.x[m * c.inF + j];
  }
  for (int64_t i = 0; i < c.M * c.nGroups; i++) sxg[i] = static_cast<float>(sums[i]);
}

// FMA chains per (row, m): 2 (even and odd nibbles) while M·ROWS ≤ 2, so that at least 4 independent chains
// hide the FMA latency (M = 1: measured ~3% faster than 2 chains); 1 when the M·ROWS rows give enough.
template <int M, int ROWS>
constexpr int kChains = M * ROWS <= 2 ? 2 : 1;

// The current group's fix-up data: scale and zero rows, Σx per row of x, the rows of y.
template <int M>
struct GroupFix {
  const float* s;
  const float* z;
  float sx[M];
  float* yr[M];
};

// AVX2 versions (int4-gemv-avx2.cc), instantiated for M = 1..8: the grouped product of a piece at its outputs
// [o0, o1) (a multiple of 8 wide), and the general-gIdx product of outputs [o0, o1) of a whole product.
template <int M>
LONAS_AVX2 void int4GemvGrouped256(const Int4Call& c, const Piece& pc, int64_t o0, int64_t o1, float* acc);
template <int M>
LONAS_AVX2 void int4GemvAnyGroup256(const Int4Call& c, int64_t o0, int64_t o1, float* acc, float* sxg);

}  // namespace int4gemv
}  // namespace lonas
