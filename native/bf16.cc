// gemmBf16: products with a weight stored as bfloat16 bit patterns (Uint16Array), everything else float32.
//
//   C = alpha · A · op(B) + beta · C,  A (m, k) float32 row-major (lda), C (m, n) float32 (ldc),
//   op(B) = Bᵀ with B stored (n, k) (transB: x · Wᵀ, a Linear's forward) or B stored (k, n) (dY · W, its
//   backward to the input). Each bf16 value is widened exactly (bits << 16), so every product is the float32
//   product of the same values an upcast float32 weight holds, accumulated in float32: only the summation
//   order can differ from sgemm on the upcast weight (as it differs between any two sgemm blockings).
//
// Paths: transB with m ≤ 16 runs the small-M kernel on the bf16 weight directly (half the bytes of the
// float32 weight per decode step). Otherwise tiles of the weight (≤ 1 MB of float32, L2-sized) are widened
// into a scratch buffer and multiplied with cblas_sgemm: the widening is O(n·k) against the product's
// O(m·n·k), so large-m products (prefill, training) run at sgemm speed (measured: a 128-token prefill of the
// 135M shape at 1 thread, 341 tok/s with bf16 weights against 345 with the float32 upcast — within noise).
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "pool.h"
#include "small-gemm.h"

namespace lonas {
namespace {

constexpr int64_t kTileFloats = int64_t{1} << 18;  // 1 MB of widened weights per sgemm call

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
// compute: "exact" (default) or "bf16-act" (bf16-dot.cc: x rounded to bf16, for transB with m ≤ 16; every
// other call is exact).
void GemmBf16(const Napi::CallbackInfo& info) {
  Args args(info, "gemmBf16", info.Length() == 16 ? 16 : 15);
  const bool bf16Act = args.mode(15, "compute", {"exact", "bf16-act"}) == 1;
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
  if (bf16Act && transB && m <= kSmallGemmMaxRows) {
    smallGemmBf16Act(SmallGemm{m, n, k, alpha, beta, A, lda, B, ldb, true, C, ldc}, poolThreads());
    return;
  }
  if (k == 0 || alpha == 0.0f || (transB && m <= kSmallGemmMaxRows)) {  // small-M kernel (it also handles k = 0 / alpha = 0)
    smallGemmNT(SmallGemm{m, n, k, alpha, beta, A, lda, B, ldb, true, C, ldc}, poolThreads());
    return;
  }
  thread_local std::vector<float> scratch;
  if (transB) {  // tiles of whole weight rows: C[:, n0:n0+tn] = alpha · A · Bᵀ[rows n0..] + beta · C
    const int64_t tn = std::max<int64_t>(1, std::min<int64_t>(n, kTileFloats / k));
    scratch.resize(tn * k);
    for (int64_t n0 = 0; n0 < n; n0 += tn) {
      const int64_t rows = std::min<int64_t>(tn, n - n0);
      widenRows(B + n0 * ldb, ldb, rows, k, scratch.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<int>(rows), k, alpha, A, lda, scratch.data(), k,
                  beta, C + n0, ldc);
    }
  } else {  // tiles of whole rows of B (k, n): C = alpha · Σ_tiles A[:, k0:k0+tk] · B[k0:k0+tk, :] + beta · C
    const int64_t tk = std::max<int64_t>(1, std::min<int64_t>(k, kTileFloats / n));
    scratch.resize(tk * n);
    for (int64_t k0 = 0; k0 < k; k0 += tk) {
      const int64_t rows = std::min<int64_t>(tk, k - k0);
      widenRows(B + k0 * ldb, ldb, rows, n, scratch.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, static_cast<int>(rows), alpha, A + k0, lda, scratch.data(), n,
                  k0 == 0 ? beta : 1.0f, C, ldc);
    }
  }
}

}  // namespace lonas
