// gemmBf16: products with a weight stored as bfloat16 bit patterns (Uint16Array), everything else float32.
//
//   C = alpha · A · op(B) + beta · C,  A (m, k) float32 row-major (lda), C (m, n) float32 (ldc),
//   op(B) = Bᵀ with B stored (n, k) (transB: x · Wᵀ, a Linear's forward) or B stored (k, n) (dY · W, its
//   backward to the input). Each bf16 value is widened exactly (bits << 16), so every product is the float32
//   product of the same values an upcast float32 weight holds, accumulated in float32 in the order gemm uses
//   on the upcast weight: the same numbers.
//
// Paths: those gemm takes for the same product on the float32 upcast (gemm.cc, gemm.h). transB with m ≤ 16
// and a weight of ≥ 64 K elements runs the small-M kernel on the bf16 weight directly (half the bytes of the
// float32 weight per decode step). Otherwise the weight (or its elastic-width slice) is widened into a
// scratch buffer and multiplied with one cblas_sgemm call (sgemv for one row or column), exactly the call gemm
// makes on the upcast weight, so the numbers are bit for bit the float32 upcast's: training on a bf16 base
// reproduces training on its upcast (test/train/bf16-base.test.ts). Tiles of the weight would bound the
// scratch, but OpenBLAS picks its kernels by size, so a tile's sums can differ in the last bit. The widening
// is O(n·k) against the product's O(m·n·k): large-m products (prefill, training) run at sgemm speed. Memory:
// one float32 copy of the largest weight used so far (≤ 64 MB kept; larger copies are freed after the call).
// Compute "bf16" (an approximation, m > 16): bf16-gemm.h's kernels; without AMX / AVX512-BF16, A rounded to
// bf16 (widened back) goes through the exact path above.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "bf16-gemm.h"
#include "common.h"
#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "small-gemm.h"

namespace lonas {
namespace {

constexpr int64_t kKeptScratchFloats = int64_t{1} << 24;  // 64 MB: the reused widening buffer's largest size

// dst (rows, cols) row-major = widened src rows with stride ld.
void widenRows(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; r++) {
    const uint16_t* s = src + r * ld;
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + r * cols);
    for (int64_t j = 0; j < cols; j++) d[j] = static_cast<uint32_t>(s[j]) << 16;
  }
}

void checkOperand(const Args& args, const char* name, int64_t length, int64_t off, int64_t rows, int64_t cols, int64_t ld) {
  if (ld < std::max<int64_t>(1, cols)) {
    args.throwRange(std::string("ld") + name + " = " + std::to_string(ld) + " must be ≥ max(1, " + std::to_string(cols) +
                    ") (the stored row width of '" + name + "')");
  }
  if (rows == 0 || cols == 0) return;
  args.need(name, length, args.add(off, args.add(args.mul(rows - 1, ld), cols)));
}

}  // namespace

// gemmBf16(transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc[, compute]) — b a Uint16Array.
// compute: "exact" (default); "bf16-act" (bf16-dot.cc: x rounded to bf16, for transB with m ≤ 16; every
// other call is exact); "bf16" (bf16-gemm.h: A rounded to bf16 for m > 16, either transB; m ≤ 16 is exact).
void GemmBf16(const Napi::CallbackInfo& info) {
  Args args(info, "gemmBf16", info.Length() == 16 ? 16 : 15);
  const int compute = args.mode(15, "compute", {"exact", "bf16-act", "bf16"});
  const bool bf16Act = compute == 1;
  bool transB = args.flag(0, "transB");
  int m = args.blasInt(1, "m"), n = args.blasInt(2, "n"), k = args.blasInt(3, "k");
  float alpha = static_cast<float>(args.number(4, "alpha"));
  F32 a = args.f32(5, "a");
  int64_t aOff = args.index(6, "aOff");
  int lda = args.blasInt(7, "lda");
  U16 b = args.u16(8, "b");
  int64_t bOff = args.index(9, "bOff");
  int ldb = args.blasInt(10, "ldb");
  float beta = static_cast<float>(args.number(11, "beta"));
  F32 c = args.f32(12, "c");
  int64_t cOff = args.index(13, "cOff");
  int ldc = args.blasInt(14, "ldc");
  bool formed = m > 0 && n > 0;
  checkOperand(args, "a", a.length, aOff, formed ? m : 0, k, lda);
  checkOperand(args, "b", b.length, bOff, formed ? (transB ? n : k) : 0, transB ? k : n, ldb);
  checkOperand(args, "c", c.length, cOff, m, n, ldc);
  if (!formed) return;
  float* A = a.data + aOff;
  const uint16_t* B = b.data + bOff;
  float* C = c.data + cOff;
  thread_local std::vector<float> rounded;  // generic bf16 mode: A rounded to bf16 and widened, (m, k)
  if (compute == 2 && m > kSmallGemmMaxRows && alpha != 0.0f && k > 0) {
    if (bf16Path() != Bf16Path::Generic) {
      bf16GemmTiles(Bf16Gemm{m, n, k, alpha, beta, A, lda, B, ldb, transB, C, ldc}, poolThreads());
      return;
    }
    rounded.resize(int64_t{m} * k);
    for (int64_t i = 0; i < m; i++) {
      uint32_t* d = reinterpret_cast<uint32_t*>(rounded.data() + i * k);
      for (int64_t j = 0; j < k; j++) d[j] = static_cast<uint32_t>(toBf16(A[i * lda + j])) << 16;
    }
    A = rounded.data();
    lda = k;
  }
  if (bf16Act && transB && m <= kSmallGemmMaxRows) {
    smallGemmBf16Act(SmallGemm{m, n, k, alpha, beta, A, lda, B, ldb, true, C, ldc}, poolThreads());
    return;
  }
  // The path gemm (gemm.cc) takes for the same product on the upcast weight, so the numbers are its numbers:
  // the small-M kernel (on the bits directly), else sgemv for one row or column, else sgemm.
  if (k == 0 || alpha == 0.0f || (transB && m <= kSmallGemmMaxRows && int64_t{n} * k >= kSmallGemmMinWeight)) {
    smallGemmNT(SmallGemm{m, n, k, alpha, beta, A, lda, B, ldb, true, C, ldc}, poolThreads());  // (also k = 0 / alpha = 0)
    return;
  }
  // the whole (slice of the) weight widened into scratch, then one sgemv / sgemm call, as gemm makes it: tiles
  // would change OpenBLAS's kernel choice (it picks by size) and with it the summation order
  const int64_t rows = transB ? n : k, cols = transB ? k : n;
  thread_local std::vector<float> kept;  // reused up to kKeptScratchFloats; a larger weight's copy is freed after the call
  std::vector<float> once;
  std::vector<float>& scratch = rows * cols <= kKeptScratchFloats ? kept : once;
  scratch.resize(rows * cols);
  float* T = scratch.data();
  widenRows(B, ldb, rows, cols, T);
  const GemmCall g{CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, lda, static_cast<int>(cols), ldc, alpha, beta, A, T, C};
  if (!tryGemv(g, g.a, g.b, g.c)) cblas_sgemm(CblasRowMajor, CblasNoTrans, g.transB, m, n, k, alpha, A, lda, T, g.ldb, beta, C, ldc);
}

}  // namespace lonas
