/**
 * Reference GEMMs (float32/float64 and the bf16-weight product): the oracle of the native sgemm/dgemm
 * calls and of native/bf16.cc, part of referenceKernels (reference.ts, whose header states the rules).
 */
import type { FloatArray } from './api.ts';
import { need } from './checks.ts';
import { SMALL_GEMM_MAX_ROWS, bf16Value, roundedToBf16 } from './bf16-bits.ts';
import { gemmBf16Rounded } from './bf16-gemm-twin.ts';

/**
 * A row-major operand stored as `batch` (rows, cols) matrices with row stride `ld`, the first at `off`,
 * each next one `stride` elements further (cblas's ld rule: ld ≥ max(1, cols)).
 */
function checkOperand(
  kernel: string,
  name: string,
  array: FloatArray,
  off: number,
  rows: number,
  cols: number,
  ld: number,
  stride: number,
  batch: number,
): void {
  if (ld < Math.max(1, cols)) {
    throw new RangeError(`${kernel}: ld${name} = ${ld} must be ≥ max(1, ${cols}) (the stored row width of '${name}')`);
  }
  if (rows === 0 || cols === 0 || batch === 0) return;
  need(kernel, name, array, off + (batch - 1) * stride + (rows - 1) * ld + cols);
}

// ---------------------------------------------------------------------------------------------
// GEMM

/**
 * C = alpha · op(A) · op(B) + beta · C, row-major like cblas_sgemm(CblasRowMajor, ...).
 * op(A): (m, k) — stored (m, k) with row stride lda, or (k, m) when transA.
 * op(B): (k, n) — stored (k, n) with row stride ldb, or (n, k) when transB.
 * C: (m, n) with row stride ldc. beta = 0 ignores C's old contents (NaN included), as BLAS does;
 * alpha = 0 does not read A or B.
 */
export function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: FloatArray,
  aOff: number,
  lda: number,
  b: FloatArray,
  bOff: number,
  ldb: number,
  beta: number,
  c: FloatArray,
  cOff: number,
  ldc: number,
): void {
  const formed = m > 0 && n > 0 ? 1 : 0;
  checkOperand('gemm', 'a', a, aOff, transA ? k : m, transA ? m : k, lda, 0, formed);
  checkOperand('gemm', 'b', b, bOff, transB ? n : k, transB ? k : n, ldb, 0, formed);
  checkOperand('gemm', 'c', c, cOff, m, n, ldc, 0, 1);
  gemmAt(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
}

/** The gemm loop itself (arguments already checked). */
function gemmAt(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: FloatArray,
  aOff: number,
  lda: number,
  b: FloatArray,
  bOff: number,
  ldb: number,
  beta: number,
  c: FloatArray,
  cOff: number,
  ldc: number,
): void {
  // op(A)[i, p] = a[aOff + i·aRow + p·aCol];  op(B)[p, j] = b[bOff + p·bRow + j·bCol]
  const aRow = transA ? 1 : lda,
    aCol = transA ? lda : 1;
  const bRow = transB ? 1 : ldb,
    bCol = transB ? ldb : 1;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      if (alpha !== 0) {
        for (let p = 0; p < k; p++) sum += a[aOff + i * aRow + p * aCol] * b[bOff + p * bRow + j * bCol];
      }
      const ci = cOff + i * ldc + j;
      c[ci] = beta === 0 ? alpha * sum : alpha * sum + beta * c[ci];
    }
  }
}

/** `batch` independent gemms; matrix i of X starts at xOff + i·strideX. */
export function gemmBatched(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: FloatArray,
  aOff: number,
  lda: number,
  strideA: number,
  b: FloatArray,
  bOff: number,
  ldb: number,
  strideB: number,
  beta: number,
  c: FloatArray,
  cOff: number,
  ldc: number,
  strideC: number,
  batch: number,
): void {
  const formed = m > 0 && n > 0 ? batch : 0;
  checkOperand('gemmBatched', 'a', a, aOff, transA ? k : m, transA ? m : k, lda, strideA, formed);
  checkOperand('gemmBatched', 'b', b, bOff, transB ? n : k, transB ? k : n, ldb, strideB, formed);
  checkOperand('gemmBatched', 'c', c, cOff, m, n, ldc, strideC, batch);
  for (let i = 0; i < batch; i++) {
    gemmAt(transA, transB, m, n, k, alpha, a, aOff + i * strideA, lda, b, bOff + i * strideB, ldb, beta, c, cOff + i * strideC, ldc);
  }
}

/**
 * C = alpha · A · op(B) + beta · C with B bfloat16 bits: op(B) = Bᵀ (B stored (n, k)) when transB, else B
 * stored (k, n). Each weight is widened exactly; products and sums in double, rounded when stored in C.
 * compute 'bf16-act' (an approximation; transB with m ≤ 16 only, every other call exact): A's values are
 * first rounded to bfloat16 (nearest even), as the native vdpbf16ps path does. compute 'bf16' (an
 * approximation; m > 16 only, every other call exact): the bf16 GEMM's twin (bf16-gemm-twin.ts, AMX's order).
 */
export function gemmBf16(
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: FloatArray,
  aOff: number,
  lda: number,
  b: Uint16Array,
  bOff: number,
  ldb: number,
  beta: number,
  c: FloatArray,
  cOff: number,
  ldc: number,
  compute: 'exact' | 'bf16-act' | 'bf16' = 'exact',
): void {
  if (compute !== 'exact' && compute !== 'bf16-act' && compute !== 'bf16')
    throw new RangeError(`gemmBf16: compute = '${compute}' must be 'exact' or 'bf16-act' or 'bf16'`);
  if (compute === 'bf16-act' && transB && m <= SMALL_GEMM_MAX_ROWS) {
    checkOperand('gemmBf16', 'a', a, aOff, m, k, lda, 0, m > 0 && n > 0 ? 1 : 0);
    gemmBf16(transB, m, n, k, alpha, roundedToBf16(a, aOff, lda, m, k), 0, Math.max(1, k), b, bOff, ldb, beta, c, cOff, ldc);
    return;
  }
  const formed = m > 0 && n > 0 ? 1 : 0;
  checkOperand('gemmBf16', 'a', a, aOff, m, k, lda, 0, formed);
  if (ldb < Math.max(1, transB ? k : n))
    throw new RangeError(`gemmBf16: ldb = ${ldb} must be ≥ max(1, ${transB ? k : n}) (the stored row width of 'b')`);
  if (formed && k > 0) need('gemmBf16', 'b', b, bOff + ((transB ? n : k) - 1) * ldb + (transB ? k : n));
  checkOperand('gemmBf16', 'c', c, cOff, m, n, ldc, 0, 1);
  if (compute === 'bf16' && m > SMALL_GEMM_MAX_ROWS && alpha !== 0 && k > 0) {
    gemmBf16Rounded(transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    return;
  }
  const bRow = transB ? 1 : ldb,
    bCol = transB ? ldb : 1; // op(B)[p, j] = b[bOff + p·bRow + j·bCol]
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      if (alpha !== 0) for (let p = 0; p < k; p++) sum += a[aOff + i * lda + p] * bf16Value(b[bOff + p * bRow + j * bCol]);
      const ci = cOff + i * ldc + j;
      c[ci] = beta === 0 ? alpha * sum : alpha * sum + beta * c[ci];
    }
  }
}
