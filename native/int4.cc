// INT4 group-quantised linear layer in the GPTQ / AutoGPTQ checkpoint layout: the N-API entry points, argument
// validation and the M > kGemvMaxRows path (the matrix-vector path is int4-gemv.cc; shared pieces in int4.h).
//
// Layout (W is (out, in) logically, y = x · Wᵀ):
//   qweight (in/8, out) int32 — row p holds inputs 8p..8p+7 of every output column, input 8p+k in
//                               bits 4k..4k+3 (unsigned nibble q)
//   scales, zeros (nGroups, out) float32 — already unpacked by the loader (true zero point z)
//   gIdx (in) int32 — group of each input row; act-order checkpoints make it non-monotonic
//   W[o, j] = (float(q[j, o]) − zeros[g, o]) · scales[g, o],  g = gIdx[j]   (two float roundings)
//
// Paths:
//  - M ≤ kGemvMaxRows = 8 (decode, small batches): int4Gemv (int4-gemv.cc), a matrix-vector product that
//    streams the packed weights once, all M rows sharing each unpacked nibble.
//  - M > 8 (prefill): dequantise tiles of Wᵀ (≤ 2 MB) to float and accumulate them with cblas_sgemm
//    (beta = 1 after the first tile), so prefill runs at GEMM speed. The tiles are exactly the values
//    int4Dequantize produces.
//  - compute "int8-act" (any M, where int8ActApplies): int4-q8.cc (decode) and int4-q8-gemm.cc (prefill).
//
// Threads: OpenBLAS owns the GEMM threads (the M > 8 path follows setThreads); int4-gemv.cc says how the
// matrix-vector path uses the compressed kernels' pool.

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "compressed.h"
#include "int4.h"

namespace lonas {
namespace {

// ---- tile dequantisation + sgemm (M > kGemvMaxRows) ------------------------------------------------

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
  // min and max without a branch per element (vectorised; a cmov chain cost ~1 µs per call at inF = 1536)
  int32_t minGroup = 0, maxGroup = -1;
  for (int64_t j = 0; j < inF; j++) {
    minGroup = std::min(minGroup, gIdx.data[j]);
    maxGroup = std::max(maxGroup, gIdx.data[j]);
  }
  if (minGroup < 0) {
    const int64_t j = std::find_if(gIdx.data, gIdx.data + inF, [](int32_t g) { return g < 0; }) - gIdx.data;
    args.throwRange("gIdx[" + std::to_string(j) + "] = " + std::to_string(gIdx.data[j]) + " is negative");
  }
  const int64_t nGroups = static_cast<int64_t>(maxGroup) + 1;
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

// int4Linear(x, M, inF, outF, qweight, scales, zeros, gIdx, groupSize, y[, compute]): y (M, outF) = x (M, inF) · Wᵀ.
// compute: "exact" (default) or "int8-act" (int4-q8.cc: x rounded to int8 per block of 32 where
// int8ActApplies, exact elsewhere).
void Int4Linear(const Napi::CallbackInfo& info) {
  Args args(info, "int4Linear", info.Length() == 11 ? 11 : 10);
  F32 x = args.f32(0, "x");
  int64_t M = args.blasInt(1, "M"), inF = args.blasInt(2, "inF"), outF = args.blasInt(3, "outF");
  I32 qweight = args.i32(4, "qweight");
  F32 scales = args.f32(5, "scales"), zeros = args.f32(6, "zeros");
  I32 gIdx = args.i32(7, "gIdx");
  int64_t groupSize = args.index(8, "groupSize");
  F32 y = args.f32(9, "y");
  if (groupSize < 1) args.throwRange("groupSize = " + std::to_string(groupSize) + " must be ≥ 1");
  const bool int8Act = args.mode(10, "compute", {"exact", "int8-act"}) == 1;
  int64_t nGroups = checkInt4Weight(args, inF, outF, qweight, scales, zeros, gIdx);
  args.need("x", x.length, args.mul(M, inF));
  args.need("y", y.length, args.mul(M, outF));
  if (M == 0 || outF == 0) return;
  if (inF == 0) {
    std::fill(y.data, y.data + M * outF, 0.0f);
    return;
  }
  // gIdx[j] = ⌊j / groupSize⌋, checked group by group (a division per element cost ~4 µs per call at inF = 1536)
  bool grouped = groupSize % 8 == 0;
  for (int64_t j0 = 0, g = 0; grouped && j0 < inF; j0 += groupSize, g++) {
    const int32_t* gi = gIdx.data + j0;
    int32_t diff = 0;
    for (int64_t j = 0; j < std::min(groupSize, inF - j0); j++) diff |= gi[j] ^ static_cast<int32_t>(g);
    grouped = diff == 0;
  }
  Int4Call c{x.data, M, inF, outF, qweight.data, scales.data, zeros.data, gIdx.data, groupSize, nGroups, grouped, y.data};
  if (int8Act && int8ActApplies(c)) int4LinearInt8Act(c);
  else if (M <= kGemvMaxRows) int4Gemv(c);
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
