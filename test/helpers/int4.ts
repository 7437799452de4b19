/** Tolerances shared by the compressed-kernel tests (test/kernels/compressed-int4, compressed-sparse, int4-int8act). */
import assert from 'node:assert/strict';
import type { Int4Weight } from '../../src/kernels/compressed.ts';

/** |got − want| ≤ tol[i] elementwise; the message names the worst element. */
export function assertWithin(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${what}: length ${got.length} vs ${want.length}`);
  let worst = -1,
    worstRatio = 1;
  for (let i = 0; i < want.length; i++) {
    const ratio = Math.abs(got[i] - want[i]) / tol[i];
    if (!(ratio <= worstRatio)) {
      worst = i;
      worstRatio = ratio;
    }
  }
  assert.ok(
    worst < 0,
    `${what}: element ${worst} is ${got[worst]}, reference ${want[worst]} (|Δ| = ${Math.abs(got[worst] - want[worst])} > tol ${tol[worst]})`,
  );
}

/** Per-output tolerance of int4Linear (float32 accumulation: 1e-6 · Σ_j |x_j| · |s| · (16 + |z|) + 1e-7). */
export function int4Tolerance(w: Int4Weight, x: Float32Array, M: number): Float64Array {
  const { inF, outF } = w;
  const tol = new Float64Array(M * outF);
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let j = 0; j < inF; j++) {
        const i = w.gIdx[j] * outF + o;
        s += Math.abs(x[m * inF + j]) * Math.abs(w.scales[i]) * (16 + Math.abs(w.zeros[i]));
      }
      tol[m * outF + o] = 1e-6 * s + 1e-7;
    }
  }
  return tol;
}
