// linalg.cc — choleskyInverseUpper: GPTQ's inverse-Hessian factor on LAPACK (OpenBLAS ships dpotrf/dpotri).
//
// a (n, n) row-major, symmetric positive definite, float64, overwritten with the upper factor U of a⁻¹
// (Uᵀ U = a⁻¹, row-major; strictly lower part zeroed), as torch.linalg.cholesky(cholesky_inverse(
// cholesky(H)), upper=True). TypeScript twin: src/kernels/linalg.ts (the oracle in tests).
//
// Row-major a read as column-major is aᵀ = a. In column-major terms: dpotrf 'L' gives a = L Lᵀ in the lower
// triangle, dpotri 'L' overwrites it with the lower triangle of a⁻¹, and dpotrf 'L' again gives a⁻¹ = M Mᵀ.
// The column-major lower triangle is the row-major upper one, where M reads as Mᵀ = U: Uᵀ U = M Mᵀ = a⁻¹.
#include <cstring>
#include <string>

#include "common.h"
#include "kernels.h"

// LAPACK (Fortran ABI: arguments by pointer, hidden string lengths last).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
}

namespace lonas {

void CholeskyInverseUpper(const Napi::CallbackInfo& info) {
  Args args(info, "choleskyInverseUpper", 2);
  F64 a = args.f64(0, "a");
  int n = args.blasInt(1, "n");
  args.need("a", a.length, args.mul(n, n));
  if (n == 0) return;
  const char lower = 'L';
  int status = 0;
  // info > 0: the leading minor of order info is not positive definite (column info − 1, 0-based)
  auto notPd = [&](const char* what) {
    args.throwRange(std::string(what) + " is not positive definite at column " + std::to_string(status - 1));
  };
  dpotrf_(&lower, &n, a.data, &n, &status, 1);
  if (status > 0) notPd("the matrix");
  if (status < 0) args.throwRange("dpotrf rejected argument " + std::to_string(-status));
  dpotri_(&lower, &n, a.data, &n, &status, 1);
  if (status > 0) args.throwRange("the Cholesky factor is singular at column " + std::to_string(status - 1));
  if (status < 0) args.throwRange("dpotri rejected argument " + std::to_string(-status));
  dpotrf_(&lower, &n, a.data, &n, &status, 1);
  if (status > 0) notPd("the inverse");
  if (status < 0) args.throwRange("dpotrf rejected argument " + std::to_string(-status));
  // row-major strictly lower part (column-major strictly upper) still holds the input: zero it
  for (int64_t i = 1; i < n; i++) std::memset(a.data + i * n, 0, sizeof(double) * i);
}

}  // namespace lonas
