// linalg.cc — GPTQ's linear algebra on OpenBLAS / LAPACK. TypeScript twins: src/kernels/linalg.ts (the oracle in tests).
//
// choleskyInverseUpper(a, n): a (n, n) row-major, symmetric positive definite, float64, overwritten with the upper
// factor U of a⁻¹ (Uᵀ U = a⁻¹; strictly lower part zeroed), as torch.linalg.cholesky(cholesky_inverse(cholesky(a)),
// upper=True) — by the reversal identity, in 2/3 n³ flops instead of the 4/3 n³ of dpotrf + dpotri + dpotrf:
// with P the reversal permutation and P a P = L' L'ᵀ (Cholesky), a = R Rᵀ with R = P L' P upper, so
// a⁻¹ = R⁻ᵀ R⁻¹ and U = R⁻¹ = P L'⁻¹ P (the Cholesky factor is unique, so this is the same U up to rounding).
// Row-major, P x P is the element order reversed. dpotrf 'U' on the column-major view (= the row-major lower
// triangle) gives L' there, dtrtri 'U' inverts it in place, and reversing again moves P L'⁻¹ P to the upper triangle.
//
// gramUpper(x, k, n, alpha, c): c (n, n) row-major float32, its upper triangle (diagonal included) += alpha · xᵀ x
// for x (k, n) row-major (cblas_ssyrk: half the flops of the gemm); the strictly lower part is not touched.
// GPTQ's Hessian Σ x xᵀ over calibration tokens.
//
// hessianFromGram(sum, n, count, h): h (n, n) float64 = 2 · sum / count, mirrored from sum's upper triangle
// (float32 (n, n), the gramUpper result; its strictly lower part is not read): h[i, j] = h[j, i] = (2·sum[i, j]) / count
// for j ≥ i, each value computed in float64 exactly as the TypeScript twin does.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common.h"
#include "kernels.h"
#include "pool.h"

// LAPACK (Fortran ABI: arguments by pointer, hidden string lengths last).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info, size_t uplo_len,
             size_t diag_len);
}

namespace lonas {

void CholeskyInverseUpper(const Napi::CallbackInfo& info) {
  Args args(info, "choleskyInverseUpper", 2);
  F64 a = args.f64(0, "a");
  int n = args.blasInt(1, "n");
  const int64_t size = args.mul(n, n);
  args.need("a", a.length, size);
  if (n == 0) return;
  const char upper = 'U', nonUnit = 'N';
  int status = 0;
  std::reverse(a.data, a.data + size);
  dpotrf_(&upper, &n, a.data, &n, &status, 1);
  // info > 0: the leading minor of order info of P a P is not positive definite = a's trailing block from n − info
  if (status > 0)
    args.throwRange("the matrix is not positive definite: its trailing block from column " + std::to_string(n - status) + " is not");
  if (status < 0) args.throwRange("dpotrf rejected argument " + std::to_string(-status));
  dtrtri_(&upper, &nonUnit, &n, a.data, &n, &status, 1, 1);
  if (status > 0) args.throwRange("the Cholesky factor is singular at column " + std::to_string(n - status));
  if (status < 0) args.throwRange("dtrtri rejected argument " + std::to_string(-status));
  std::reverse(a.data, a.data + size);
  // the row-major strictly lower part holds the reversed, untouched rest of the input: zero it
  for (int64_t i = 1; i < n; i++) std::memset(a.data + i * n, 0, sizeof(double) * i);
}

void HessianFromGram(const Napi::CallbackInfo& info) {
  Args args(info, "hessianFromGram", 4);
  F32 sum = args.f32(0, "sum");
  const int64_t n = args.index(1, "n");
  const double count = args.number(2, "count");
  F64 h = args.f64(3, "h");
  args.need("sum", sum.length, args.mul(n, n));
  args.need("h", h.length, args.mul(n, n));
  if (!(count > 0)) args.throwRange("count must be > 0");
  const float* s = sum.data;
  double* H = h.data;
  // 64-row bands on the pool; each band writes its rows of the upper triangle and, tile by tile, their mirror
  constexpr int64_t T = 64;
  parallelFor((n + T - 1) / T, 1, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i0 = b0 * T; i0 < std::min(b1 * T, n); i0 += T)
      for (int64_t j0 = i0; j0 < n; j0 += T)
        for (int64_t i = i0; i < std::min(i0 + T, n); i++)
          for (int64_t j = std::max(i, j0); j < std::min(j0 + T, n); j++) H[i * n + j] = H[j * n + i] = (2.0 * s[i * n + j]) / count;
  });
}

void GramUpper(const Napi::CallbackInfo& info) {
  Args args(info, "gramUpper", 5);
  F32 x = args.f32(0, "x");
  int k = args.blasInt(1, "k"), n = args.blasInt(2, "n");
  double alpha = args.number(3, "alpha");
  F32 c = args.f32(4, "c");
  args.need("x", x.length, args.mul(k, n));
  args.need("c", c.length, args.mul(n, n));
  if (n == 0 || k == 0) return;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, static_cast<float>(alpha), x.data, n, 1.0f, c.data, n);
}

}  // namespace lonas
