/**
 * GPTQ's linear algebra: the upper Cholesky factor of an inverse Hessian (float64) and the Hessian's Gram matrix
 * xᵀ x (float32). The native kernels are LAPACK's dpotrf/dtrtri and OpenBLAS's ssyrk (native/linalg.cc, blocked
 * and threaded by OpenBLAS); the TypeScript twins below are the O(n³) textbook versions, the oracles in tests and
 * the fallbacks without the addon. They round in a different order, so the results agree to rounding, not bit
 * for bit.
 */
import { nativeKernels } from './index.ts';

/**
 * Cholesky factor L (lower, row-major n×n) of a symmetric matrix, or the first column j at which its leading
 * (j + 1)-minor is not positive definite.
 */
function cholesky(a: Float64Array, n: number): Float64Array | number {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
    if (!(d > 0)) return j;
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
 * torch.linalg.cholesky(cholesky_inverse(cholesky(a)), upper=True), by the reversal identity the native kernel
 * uses (P the reversal permutation): P a P = L' L'ᵀ, U = P L'⁻¹ P. Row-major, P x P is the elements reversed.
 */
export function referenceCholeskyInverseUpper(a: Float64Array, n: number): void {
  a.subarray(0, n * n).reverse();
  const l = cholesky(a, n);
  if (typeof l === 'number')
    // P a P's leading block up to l = a's trailing block from n − 1 − l
    throw new Error(`choleskyInverseUpper: the matrix is not positive definite: its trailing block from column ${n - 1 - l} is not`);
  // L'⁻¹ (lower) by forward substitution, column by column, into a
  a.fill(0);
  for (let c = 0; c < n; c++) {
    a[c * n + c] = 1 / l[c * n + c];
    for (let r = c + 1; r < n; r++) {
      let s = 0;
      for (let k = c; k < r; k++) s -= l[r * n + k] * a[k * n + c];
      a[r * n + c] = s / l[r * n + r];
    }
  }
  a.subarray(0, n * n).reverse();
}

/** The reference twin of the native `gramUpper`: c's upper triangle += alpha · xᵀ x for x (k, n), summed in float64, stored float32. */
export function referenceGramUpper(x: Float32Array, k: number, n: number, alpha: number, c: Float32Array): void {
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += x[t * n + i] * x[t * n + j];
      c[i * n + j] += alpha * s;
    }
}

/** `choleskyInverseUpper` on LAPACK when the native addon is loaded, else on the twin. */
export function choleskyInverseUpper(a: Float64Array, n: number): void {
  if (a.length < n * n) throw new Error(`choleskyInverseUpper: a has ${a.length} elements, (${n}, ${n}) needs ${n * n}`);
  const native = nativeKernels();
  if (native) native.choleskyInverseUpper(a, n);
  else referenceCholeskyInverseUpper(a, n);
}

/** The reference twin of the native `hessianFromGram`: h[i, j] = h[j, i] = (2 · sum[i, j]) / count for j ≥ i (bit for bit the native). */
export function referenceHessianFromGram(sum: Float32Array, n: number, count: number, h: Float64Array): void {
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      const v = (2 * sum[i * n + j]) / count;
      h[i * n + j] = v;
      h[j * n + i] = v;
    }
}

/** H (n, n) float64 from the Gram sum's upper triangle: natively when the addon is loaded, else the twin. */
export function hessianFromGram(sum: Float32Array, n: number, count: number): Float64Array {
  if (sum.length < n * n) throw new Error(`hessianFromGram: sum has ${sum.length} elements, (${n}, ${n}) needs ${n * n}`);
  const h = new Float64Array(n * n);
  const native = nativeKernels();
  if (native) native.hessianFromGram(sum, n, count, h);
  else referenceHessianFromGram(sum, n, count, h);
  return h;
}

/** `gramUpper` on OpenBLAS's ssyrk when the native addon is loaded, else on the twin. */
export function gramUpper(x: Float32Array, k: number, n: number, alpha: number, c: Float32Array): void {
  if (x.length < k * n) throw new Error(`gramUpper: x has ${x.length} elements, (${k}, ${n}) needs ${k * n}`);
  if (c.length < n * n) throw new Error(`gramUpper: c has ${c.length} elements, (${n}, ${n}) needs ${n * n}`);
  const native = nativeKernels();
  if (native) native.gramUpper(x, k, n, alpha, c);
  else referenceGramUpper(x, k, n, alpha, c);
}
