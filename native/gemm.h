// What gemm.cc and bf16.cc share, so that a product with a bfloat16 weight takes the path the same product
// on the float32 upcast takes (the same kernel, the same summation order, the same numbers).
#pragma once

#include <cblas.h>

#include <cstdint>

namespace lonas {

// Arguments of one row-major product C = alpha · op(A) · op(B) + beta · C, already validated.
struct GemmCall {
  CBLAS_TRANSPOSE transA, transB;
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;
  float *a, *b, *c;  // first matrix of each operand (offset applied)
};

// x (m, k) · Wᵀ with W stored (n, k) row-major (a Linear's weight or a slice of one) and m ≤ 16 rows
// (decode, small batches, short prompts) runs on the small-M kernel (small-gemm.h), which reads W once
// instead of packing it like sgemm and beats sgemv at one row too (measured 0.4–0.65× OpenBLAS's time for
// the 135M model's projections at m = 1..16). Weights under 64 K elements stay on OpenBLAS, whose call
// overhead is lower (e.g. attention scores of a short cache).
constexpr int64_t kSmallGemmMinWeight = int64_t{1} << 16;

// A product with one row (m = 1) or one column (n = 1) as sgemv (see gemm.cc); false (nothing done) otherwise.
bool tryGemv(const GemmCall& g, float* a, float* b, float* c);

}  // namespace lonas
