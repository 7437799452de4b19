// The bf16 GEMM of gemmBf16's compute mode "bf16" (bf16-gemm.cc): C = alpha · bf16(A) · op(B) + beta · C with
// A (m, k) float32 rounded to bfloat16 (nearest even), B bfloat16 bits, float32 accumulation.
//
// Paths, chosen at run time (the best usable; bf16GemmPath(name) forces one, for tests and benchmarks):
//   amx         AMX tiles, TDPBF16PS (Sapphire Rapids and later; needs the kernel's XTILEDATA permission)
//   avx512bf16  AVX512-BF16 vdpbf16ps (e.g. AMD Zen 4, Cooper Lake)
//   generic     A rounded to bf16 and widened, then the exact path (sgemm on the widened weight)
// Math (amx, avx512bf16): every C element is one float32 sum over k in order, pair by pair (k = 2p, 2p+1;
// amx adds the even product first, avx512bf16 the odd one), subnormal inputs and results flushed to 0;
// then alpha · s (+ beta · c). The products of two bf16 values are exact in float32. generic: the same
// products, summed in sgemm's order.
#pragma once

#include <cstdint>

namespace lonas {

enum class Bf16Path : int { Generic = 0, Avx512Bf16 = 1, Amx = 2 };

struct Bf16Gemm {
  int64_t m, n, k;
  float alpha, beta;  // beta = 0: C's old contents are ignored
  const float* a;     // (m, k), row stride lda
  int64_t lda;
  const uint16_t* b;  // transB: (n, k) (x · Wᵀ); else (k, n) (dY · W); row stride ldb
  int64_t ldb;
  bool transB;
  float* c;  // (m, n), row stride ldc
  int64_t ldc;
};

// The path in use (the best this CPU and kernel allow unless forced).
Bf16Path bf16Path();

// Runs g on the amx or avx512bf16 path (bf16Path() must not be Generic) with up to `threads` threads.
void bf16GemmTiles(const Bf16Gemm& g, int threads);

// Rounds float32 to bfloat16 bits, nearest even (NaN stays a quiet NaN), as torch's .to(torch.bfloat16).
uint16_t toBf16(float f);

}  // namespace lonas
