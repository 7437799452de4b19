/**
 * Float64 linear algebra of GPTQ: the upper Cholesky factor of an inverse Hessian. The native kernel is
 * LAPACK's dpotrf/dpotri (native/linalg.cc, blocked and threaded by OpenBLAS); the TypeScript twin below is
 * the O(n³) textbook version, the oracle in tests and the fallback without the addon. The two round in a
 * different order, so their factors agree to float64 rounding, not bit for bit.
 */
import { nativeKernels } from './index.ts';

/** Cholesky factor L (lower, row-major n×n) of a symmetric positive-definite matrix; throws if not SPD. */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
    if (!(d > 0)) throw new Error(`choleskyInverseUpper: the matrix is not positive definite at column ${j}`);
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/**
 * The reference twin of the native `choleskyInverseUpper`: a (n, n) symmetric positive definite, row-major,
 * is overwritten with the upper factor U of a⁻¹ (Uᵀ U = a⁻¹; strictly lower part 0), as
 * torch.linalg.cholesky(cholesky_inverse(cholesky(a)), upper=True).
 */
export function referenceCholeskyInverseUpper(a: Float64Array, n: number): void {
  const l = cholesky(a, n);
  // L⁻¹ by forward substitution (lower triangular)
  const li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    li[c * n + c] = 1 / l[c * n + c];
    for (let r = c + 1; r < n; r++) {
      let s = 0;
      for (let k = c; k < r; k++) s -= l[r * n + k] * li[k * n + c];
      li[r * n + c] = s / l[r * n + r];
    }
  }
  // a⁻¹ = L⁻ᵀ L⁻¹
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i] * li[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  const m = cholesky(inv, n); // a⁻¹ = M Mᵀ → U = Mᵀ
  a.fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[j * n + i] = m[i * n + j];
}

/** `choleskyInverseUpper` on LAPACK when the native addon is loaded, else on the twin. */
export function choleskyInverseUpper(a: Float64Array, n: number): void {
  if (a.length < n * n) throw new Error(`choleskyInverseUpper: a has ${a.length} elements, (${n}, ${n}) needs ${n * n}`);
  const native = nativeKernels();
  if (native) native.choleskyInverseUpper(a, n);
  else referenceCholeskyInverseUpper(a, n);
}
