// Internal to the INT4 kernels (int4.cc: entry points, validation, the tile-dequantise + sgemm path;
// int4-gemv.cc and int4-gemv-avx2.cc: the matrix-vector path at M ≤ kGemvMaxRows; int4-q8.cc and
// int4-q8-gemm.cc: compute mode int8-act). Layout and formulas: see int4.cc.
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
// approximation, used only when int8ActApplies(c) (contiguous groups of a multiple of 32, any M).
bool int8ActApplies(const Int4Call& c);
void int4LinearInt8Act(const Int4Call& c);

constexpr int64_t kQ8Block = 32;                 // inputs per int8 block of x
constexpr int64_t kRowsPerBlock = kQ8Block / 8;  // packed rows per block

// x quantised for one int8-act call (int4-q8.cc): per row m, packed row p, the even-input and odd-input bytes
// (xpk), per block its scale d, per group SD_g.
struct Q8X {
  const int32_t* xpk;  // (M, packedRows, 2)
  const float* d;      // (M, nBlocks)
  const float* sd;     // (M, nGroups)
  int64_t nBlocks;
};

// Whether the CPU has AVX512-VNNI and AVX512-BW (and the active level is AVX-512).
bool q8Vnni512();

// The int8-act product of rows [0, c.M) at outputs [o0, o1) for M > kGemvMaxRows with AVX512-VNNI
// (int4-q8-gemm.cc): register tiles of several rows, each row's y bit-identical to int4-q8.cc's.
void q8GemmVnni(const Int4Call& c, const Q8X& q, int64_t o0, int64_t o1);

}  // namespace lonas
