// gemm / gemmBatched: validated wrappers over OpenBLAS cblas_sgemm (row-major); one-row products go to
// sgemv, and x · Wᵀ with few rows of x to the small-M kernel (see trySmallGemm).
//
// C = alpha · op(A) · op(B) + beta · C with op(A): (m, k), op(B): (k, n), C: (m, n).
// Storage (row-major, like cblas): A is (m, k) with row stride lda, or (k, m) when transA;
// B is (k, n) with row stride ldb, or (n, k) when transB; C is (m, n) with row stride ldc.
// OpenBLAS owns the threading (see setThreads in lonas.cc).
#include <cblas.h>

#include <algorithm>
#include <string>

#include "common.h"
#include "kernels.h"
#include "pool.h"
#include "gemm.h"
#include "small-gemm.h"

namespace lonas {
namespace {

// Validates one operand stored as `batch` row-major (rows, cols) matrices with row stride `ld`,
// the first at `off`, each next one `stride` elements further. Mirrors cblas's own ld checks
// (which would otherwise print an xerbla message and silently return).
void checkOperand(const Args& args, const char* name, const char* ldName, const F32& array, int64_t off,
                  int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
  if (ld < std::max<int64_t>(1, cols)) {
    args.throwRange(std::string(ldName) + " = " + std::to_string(ld) + " must be ≥ max(1, " +
                    std::to_string(cols) + ") (the stored row width of '" + name + "')");
  }
  if (rows == 0 || cols == 0 || batch == 0) return;  // nothing of this operand is touched
  // last element touched + 1 = off + (batch−1)·stride + (rows−1)·ld + cols
  int64_t end = args.add(args.add(off, args.mul(batch - 1, stride)), args.add(args.mul(rows - 1, ld), cols));
  args.need(name, array.length, end);
}

// x · Wᵀ with m ≤ 16 rows and a weight of at least kSmallGemmMinWeight elements: the small-M kernel (gemm.h).
bool trySmallGemm(const GemmCall& g, float* a, float* b, float* c) {
  if (g.transA != CblasNoTrans || g.transB != CblasTrans || g.m > kSmallGemmMaxRows || g.k == 0) return false;
  if (static_cast<int64_t>(g.n) * g.k < kSmallGemmMinWeight) return false;
  SmallGemm s{g.m, g.n, g.k, g.alpha, g.beta, a, g.lda, b, g.ldb, false, c, g.ldc};
  smallGemmNT(s, poolThreads());
  return true;
}

void runSgemm(const GemmCall& g, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch) {
  if (g.m == 0 || g.n == 0) return;  // C is empty
  for (int64_t i = 0; i < batch; i++) {
    if (trySmallGemm(g, g.a + i * strideA, g.b + i * strideB, g.c + i * strideC)) continue;
    if (tryGemv(g, g.a + i * strideA, g.b + i * strideB, g.c + i * strideC)) continue;
    cblas_sgemm(CblasRowMajor, g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a + i * strideA, g.lda,
                g.b + i * strideB, g.ldb, g.beta, g.c + i * strideC, g.ldc);
  }
}

}  // namespace

// gemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc)
void Gemm(const Napi::CallbackInfo& info) {
  Args args(info, "gemm", 16);
  bool transA = args.flag(0, "transA"), transB = args.flag(1, "transB");
  int m = args.blasInt(2, "m"), n = args.blasInt(3, "n"), k = args.blasInt(4, "k");
  double alpha = args.number(5, "alpha");
  F32 a = args.f32(6, "a");
  int64_t aOff = args.index(7, "aOff");
  int lda = args.blasInt(8, "lda");
  F32 b = args.f32(9, "b");
  int64_t bOff = args.index(10, "bOff");
  int ldb = args.blasInt(11, "ldb");
  double beta = args.number(12, "beta");
  F32 c = args.f32(13, "c");
  int64_t cOff = args.index(14, "cOff");
  int ldc = args.blasInt(15, "ldc");

  // Operands whose product is not formed (m·n = 0) are still ld-checked, like cblas does.
  bool formed = m > 0 && n > 0;
  checkOperand(args, "a", "lda", a, aOff, transA ? k : m, transA ? m : k, lda, 0, formed ? 1 : 0);
  checkOperand(args, "b", "ldb", b, bOff, transB ? n : k, transB ? k : n, ldb, 0, formed ? 1 : 0);
  checkOperand(args, "c", "ldc", c, cOff, m, n, ldc, 0, 1);

  GemmCall g{transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, lda, ldb, ldc,
             static_cast<float>(alpha), static_cast<float>(beta), a.data + aOff, b.data + bOff, c.data + cOff};
  runSgemm(g, 0, 0, 0, 1);
}

// gemmBatched(transA, transB, m, n, k, alpha, a, aOff, lda, strideA, b, bOff, ldb, strideB,
//             beta, c, cOff, ldc, strideC, batch) — matrix i of X starts at xOff + i·strideX.
void GemmBatched(const Napi::CallbackInfo& info) {
  Args args(info, "gemmBatched", 20);
  bool transA = args.flag(0, "transA"), transB = args.flag(1, "transB");
  int m = args.blasInt(2, "m"), n = args.blasInt(3, "n"), k = args.blasInt(4, "k");
  double alpha = args.number(5, "alpha");
  F32 a = args.f32(6, "a");
  int64_t aOff = args.index(7, "aOff");
  int lda = args.blasInt(8, "lda");
  int64_t strideA = args.index(9, "strideA");
  F32 b = args.f32(10, "b");
  int64_t bOff = args.index(11, "bOff");
  int ldb = args.blasInt(12, "ldb");
  int64_t strideB = args.index(13, "strideB");
  double beta = args.number(14, "beta");
  F32 c = args.f32(15, "c");
  int64_t cOff = args.index(16, "cOff");
  int ldc = args.blasInt(17, "ldc");
  int64_t strideC = args.index(18, "strideC");
  int64_t batch = args.index(19, "batch");

  int64_t formed = m > 0 && n > 0 ? batch : 0;
  checkOperand(args, "a", "lda", a, aOff, transA ? k : m, transA ? m : k, lda, strideA, formed);
  checkOperand(args, "b", "ldb", b, bOff, transB ? n : k, transB ? k : n, ldb, strideB, formed);
  checkOperand(args, "c", "ldc", c, cOff, m, n, ldc, strideC, batch);

  GemmCall g{transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, lda, ldb, ldc,
             static_cast<float>(alpha), static_cast<float>(beta), a.data + aOff, b.data + bOff, c.data + cOff};
  runSgemm(g, strideA, strideB, strideC, batch);
}

// A product with one row (decode: one token times a weight) or one column is a matrix-vector
// product. OpenBLAS 0.3.21's sgemm does not forward those to sgemv and packs the whole weight first,
// which costs ~2x on memory-bound decode, so forward them here. Same math, one rounding order.
bool tryGemv(const GemmCall& g, float* a, float* b, float* c) {
  if (g.k == 0) return false;
  if (g.beta == 0.0f) {  // BLAS semantics: C's old contents (even NaN) are ignored when beta = 0
    for (int j = 0; j < (g.m == 1 ? g.n : g.m); j++) c[g.m == 1 ? j : static_cast<int64_t>(j) * g.ldc] = 0.0f;
  }
  if (g.m == 1) {
    // c (n) = alpha · op(B)ᵀ-wise · a_row; a's k elements are 1 apart, or lda apart when transA.
    int incx = g.transA == CblasTrans ? g.lda : 1;
    if (g.transB == CblasTrans) {  // B stored (n, k): c = B · x
      cblas_sgemv(CblasRowMajor, CblasNoTrans, g.n, g.k, g.alpha, b, g.ldb, a, incx, g.beta, c, 1);
    } else {  // B stored (k, n): c = Bᵀ · x
      cblas_sgemv(CblasRowMajor, CblasTrans, g.k, g.n, g.alpha, b, g.ldb, a, incx, g.beta, c, 1);
    }
    return true;
  }
  if (g.n == 1) {
    // c (m, column with stride ldc) = op(A) · b_col; b's k elements are 1 apart when transB, else ldb.
    int incx = g.transB == CblasTrans ? 1 : g.ldb;
    if (g.transA == CblasTrans) {  // A stored (k, m)
      cblas_sgemv(CblasRowMajor, CblasTrans, g.k, g.m, g.alpha, a, g.lda, b, incx, g.beta, c, g.ldc);
    } else {  // A stored (m, k)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, g.m, g.k, g.alpha, a, g.lda, b, incx, g.beta, c, g.ldc);
    }
    return true;
  }
  return false;
}

}  // namespace lonas
