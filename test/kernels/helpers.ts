/**
 * Shared by the kernel tests (test/kernels/*.test.ts): native-vs-reference twins and their tolerance, RoPE
 * tables, and the compressed-weight fixtures (SIMD levels, random INT4 weights, bit-exact and error checks).
 */
import assert from 'node:assert/strict';
import type { FloatArray, Kernels, SimdLevel } from '../../src/kernels/api.ts';
import { groupIndex, packInt4, type Int4Weight } from '../../src/kernels/compressed.ts';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { nativeKernels } from '../helpers/native.ts';

// ---------------------------------------------------------------------------------------------
// Native vs reference twins (dense kernels)

export function randInts(rng: () => number, n: number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor(rng() * (hi - lo));
  return a;
}

export const RTOL = 1e-5;
export const ATOL = 1e-6;

/** |got − want| ≤ atol + rtol·|want| elementwise (NaN matches NaN); the message names the worst element. */
export function assertClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, rtol = RTOL, atol = ATOL): void {
  assert.equal(got.length, want.length, `${what}: length ${got.length} vs ${want.length}`);
  let worst = -1,
    worstExcess = -Infinity;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]) && Number.isNaN(want[i])) continue;
    const excess = Math.abs(got[i] - want[i]) - (atol + rtol * Math.abs(want[i]));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  assert.ok(worst < 0, `${what}: element ${worst} is ${got[worst]} (native), reference ${want[worst]} (rtol ${rtol}, atol ${atol})`);
}

export type Arrays = Record<string, Float32Array | Int32Array>;

/** Runs `run` once on each backend, each with fresh copies of `arrays`; returns the copies and results. */
export function twin<A extends Arrays, R>(arrays: A, run: (k: Kernels, a: A) => R) {
  const copy = (): A => Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, v.slice()])) as A;
  const n = copy(),
    r = copy();
  const nativeResult = run(nativeKernels(), n);
  const refResult = run(ref, r);
  return { n, r, nativeResult, refResult };
}

/** cos/sin tables (maxPos, headDim/2) for rotary base 10000 (float32 unless `ArrayType` says otherwise). */
export function ropeTables<T extends FloatArray = Float32Array>(
  maxPos: number,
  headDim: number,
  ArrayType: new (n: number) => T = Float32Array as unknown as new (
    n: number,
  ) => T,
) {
  const half = headDim / 2;
  const cos = new ArrayType(maxPos * half),
    sin = new ArrayType(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const theta = p * 10000 ** ((-2 * i) / headDim);
      cos[p * half + i] = Math.cos(theta);
      sin[p * half + i] = Math.sin(theta);
    }
  }
  return { cos, sin };
}

// ---------------------------------------------------------------------------------------------
// Compressed-weight kernels

/** SIMD levels this CPU runs, best first (the native default is the first). */
export function levels(): SimdLevel[] {
  const all: SimdLevel[] = ['avx512', 'avx2', 'scalar'];
  const best = nativeKernels().compressedIsa('avx512');
  return all.slice(all.indexOf(best));
}

function shuffle(rng: () => number, a: Int32Array): Int32Array {
  const b = a.slice();
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [b[i], b[j]] = [b[j], b[i]];
  }
  return b;
}

export function assertBitEqual(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

/** The message of the error `fn` throws (fails if it does not throw `type`). */
export function errorOf(fn: () => void, type: typeof RangeError | typeof TypeError = RangeError): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    return (err as Error).message;
  }
  assert.fail('expected an error');
}

/** A random INT4 weight: q uniform in 0..15, scales in ±[0.005, 0.1], zeros integer 0..15 (or fractional). */
export function randomInt4(
  rng: () => number,
  outF: number,
  inF: number,
  groupSize: number,
  opts: { actOrder?: boolean; fractionalZeros?: boolean } = {},
): Int4Weight {
  const q = new Uint8Array(outF * inF);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(rng() * 16);
  const nGroups = Math.ceil(inF / groupSize);
  const scales = new Float32Array(nGroups * outF),
    zeros = new Float32Array(nGroups * outF);
  for (let i = 0; i < scales.length; i++) {
    scales[i] = (0.005 + 0.095 * rng()) * (rng() < 0.1 ? -1 : 1);
    zeros[i] = opts.fractionalZeros ? rng() * 15 : Math.floor(rng() * 16);
  }
  const g = groupIndex(inF, groupSize);
  return { inF, outF, groupSize, qweight: packInt4(q, outF, inF), scales, zeros, gIdx: opts.actOrder ? shuffle(rng, g) : g };
}

/** Per-output tolerance of a product with a dense (outF, inF) weight. */
export function denseTolerance(w: Float32Array, outF: number, inF: number, x: Float32Array, M: number): Float64Array {
  const tol = new Float64Array(M * outF);
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let j = 0; j < inF; j++) s += Math.abs(x[m * inF + j] * w[o * inF + j]);
      tol[m * outF + o] = 1e-6 * s + 1e-7;
    }
  }
  return tol;
}
