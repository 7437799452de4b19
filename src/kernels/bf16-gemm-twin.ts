/**
 * TypeScript twin of the native bf16 GEMM (native/bf16-gemm.h, gemmBf16's compute 'bf16' for m > 16): the
 * oracle of its AMX and AVX512-BF16 paths, and what the reference kernels compute in that mode.
 *
 *   C = alpha · bf16(A) · op(B) + beta · C,  A (m, k) rounded to bfloat16 (nearest even), B bf16 bits,
 *   op(B) = Bᵀ with B stored (n, k) when transB, else B stored (k, n); C (m, n).
 * Each C element is a float32 sum over k in the order of the instruction (measured on Sapphire Rapids: the
 * kernel test checks it bit for bit):
 *   'amx'         TDPBF16PS: per block of 32 k (one tile), the even-k and the odd-k products summed in two
 *                 chains from 0, the block's e + o then added to the accumulator
 *   'avx512bf16'  vdpbf16ps: k ascending, pair by pair, the odd product of a pair before the even one
 * A product of two bf16 values is exact in float32; subnormal inputs and sums are flushed to 0 (both do).
 */
import type { FloatArray } from './api.ts';
import { bf16Value, roundedToBf16 } from './bf16-bits.ts';

export type Bf16Order = 'amx' | 'avx512bf16';

const MIN_NORMAL = 2 ** -126;
const f = Math.fround;
const ftz = (v: number) => (Math.abs(v) < MIN_NORMAL ? 0 : v);

/** Operands are trusted (the reference gemmBf16 checks them before calling this). */
export function gemmBf16Rounded(
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
  order: Bf16Order = 'amx',
): void {
  const ar = roundedToBf16(a, aOff, lda, m, k).map(ftz); // (m, k)
  const bRow = transB ? 1 : ldb,
    bCol = transB ? ldb : 1; // op(B)[p, j] = b[bOff + p·bRow + j·bCol]
  const bv = (p: number, j: number) => ftz(bf16Value(b[bOff + p * bRow + j * bCol]));
  // the product at k = p (0 past k: the kernels' zero padding)
  const prod = (i: number, j: number, p: number) => (p < k ? ftz(f(ar[i * k + p] * bv(p, j))) : 0);
  const add = (s: number, v: number) => ftz(f(s + v));
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      if (order === 'amx') {
        for (let p0 = 0; p0 < k; p0 += 32) {
          let even = 0,
            odd = 0;
          for (let p = p0; p < p0 + 32; p += 2) {
            even = add(even, prod(i, j, p));
            odd = add(odd, prod(i, j, p + 1));
          }
          s = add(s, add(even, odd));
        }
      } else {
        for (let p = 0; p < k; p += 2) s = add(add(s, prod(i, j, p + 1)), prod(i, j, p));
      }
      const ci = cOff + i * ldc + j;
      const t = f(alpha * s);
      c[ci] = beta === 0 ? t : f(t + f(beta * c[ci]));
    }
  }
}
