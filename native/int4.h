// Internal to the INT4 kernels (int4.cc: entry points, validation, the tile-dequantise + sgemm path;
// int4-gemv.cc: the matrix-vector path at M ≤ kGemvMaxRows). Layout and formulas: see int4.cc.
#pragma once
#include <cstdint>
#include <vector>

#define LONAS_AVX512 __attribute__((target("avx512f")))
#define LONAS_AVX2 __attribute__((target("avx2,fma")))
#define LONAS_INLINE inline __attribute__((always_inline))

namespace lonas {

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
  const float* xs = nullptr;  // (M, inF): x scaled for the SIMD matrix-vector paths (scaledX)
};

// Per-thread scratch that only grows.
inline float* scratch(std::vector<float>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}

// The exact dequantised weight, as int4Dequantize and the reference define it.
LONAS_INLINE float dequant(uint32_t word, int k, float z, float s) {
  return (static_cast<float>((word >> (4 * k)) & 15u) - z) * s;
}

// y (M, outF) = x (M, inF) · Wᵀ for M ≤ kGemvMaxRows, reading the packed weights once (int4-gemv.cc).
void int4Gemv(const Int4Call& c);

// Compute mode "int8-act" (int4-q8.cc): x rounded to int8 per block of 32, integer dot products. An
// approximation, used only when int8ActApplies(c) (M ≤ kGemvMaxRows, contiguous groups of a multiple of 32).
bool int8ActApplies(const Int4Call& c);
void int4GemvInt8Act(const Int4Call& c);

}  // namespace lonas
