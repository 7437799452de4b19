// Small-M products against a row-major weight: y (M, N) = alpha · x (M, K) · Wᵀ + beta · y, with W (N, K)
// (a Linear's (out, in) weight, or a row/column slice of one), M ≤ kSmallGemmMaxRows (decode, small batches).
//
// Why: OpenBLAS 0.3.21's sgemm packs the whole of W before computing, so for a few rows it reads W about
// twice and spends its time packing (measured ~2× the sgemv time at M = 8, see gemm.cc). This kernel reads
// each weight row once from memory, while the M rows of x stay in cache: the cost stays near the sgemv cost.
// Math: each y[m, n] is one float32 dot product accumulated lane-wise (16 or 8 lanes of k) with fused
// multiply-adds, the lanes summed at the end, then alpha · s (+ beta · y). The order depends only on K and
// the ISA, not on M or on the other rows, so a row's result does not depend on the batch it is in.
// Weights are float32, or bfloat16 bit patterns widened exactly to float32 in registers (x << 16).
#pragma once

#include <cstdint>

namespace lonas {

constexpr int64_t kSmallGemmMaxRows = 16;

struct SmallGemm {
  int64_t M, N, K;
  float alpha, beta;   // beta = 0: y's old contents are ignored (BLAS semantics)
  const float* x;      // (M, K), row stride ldx
  int64_t ldx;
  const void* w;       // (N, K), row stride ldw: float, or uint16_t bfloat16 bits when bf16
  int64_t ldw;
  bool bf16;
  float* y;            // (M, N), row stride ldy
  int64_t ldy;
};

// Runs the product on up to `threads` threads (the output columns split over the pool of pool.h).
void smallGemmNT(const SmallGemm& g, int threads);

// gemmBf16's compute mode "bf16-act" (bf16-dot.cc): the same product with x rounded to bfloat16 first (an
// approximation), on AVX512-BF16's vdpbf16ps where the CPU has it. g.w must be bf16.
void smallGemmBf16Act(const SmallGemm& g, int threads);

}  // namespace lonas
