/**
 * GPTQ's column loop on the native kernel (native/gptq.cc) against its TypeScript twin (src/kernels/gptq.ts).
 * Inside a block the kernel does the twin's float64 operations in the twin's order, so with a single block the
 * error-propagated weights are equal bit for bit; between blocks the lazy update is an OpenBLAS dgemm (FMA, its
 * own summation order), so there the weights agree to float64 rounding (≤ 1e-13 relative) and the codes, scales,
 * zeros and g_idx of every case here are still equal — plain and act-order, keepZeros, one group per row and
 * groups of 32 / 128, 2/3/4/8 bits, blocks that do and do not divide the width.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeKernels } from '../../src/kernels/index.ts';
import { referenceGptqColumns } from '../../src/kernels/gptq.ts';
import type { GptqColumnsJob } from '../../src/kernels/gptq.ts';
import { gptqQuantize, prepareHessian } from '../../src/compress/gptq.ts';
import { Rng } from '../../src/tensor/index.ts';

const native = nativeKernels();
const skip = !native && 'native addon not built';

/** H = Xᵀ X / T for X (T, n) with some inputs that never fire (dead: zero row and column), (n, n). */
function hessian(rng: Rng, n: number, tokens: number, dead: number[] = []): Float64Array {
  const x = Float64Array.from({ length: tokens * n }, (_, k) => (dead.includes(k % n) ? 0 : rng.normal() * (1 + (k % 7))));
  const h = new Float64Array(n * n);
  for (let t = 0; t < tokens; t++)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] += (x[t * n + i] * x[t * n + j]) / tokens;
  return h;
}

/** w (out, in) ~ N(0, 0.05²), every third weight 0 when `sparse` (keepZeros keeps them). */
function weight(rng: Rng, out: number, inF: number, sparse: boolean): Float32Array {
  return Float32Array.from({ length: out * inF }, (_, k) => (sparse && k % 3 === 0 ? 0 : rng.normal() * 0.05));
}

const CASES = [
  // out, in, groupSize, blockSize
  [24, 64, 32, 32],
  [40, 192, 128, 64],
  [13, 100, -1, 32], // one group per row; 100 = 3 blocks of 32 + 4
  [37, 257, 32, 128], // a row count that is not a whole register tile, a width that is not whole vectors
] as const;

for (const actOrder of [false, true])
  for (const keepZeros of [false, true])
    test(`gptqColumns: native codes equal the twin's (act-order ${actOrder}, keepZeros ${keepZeros}, bits 2/3/4/8)`, { skip }, () => {
      const rng = new Rng(actOrder ? 21 : 5);
      for (const [out, inF, gs, bs] of CASES) {
        const prep = prepareHessian(hessian(rng, inF, inF + 16, [3, inF - 2]), inF, actOrder, 0.01);
        const w = weight(rng, out, inF, keepZeros);
        for (const bits of [2, 3, 4, 8]) {
          const o = { bits, groupSize: gs, actOrder, blockSize: bs, keepZeros };
          const what = `${out}×${inF} group ${gs} block ${bs} bits ${bits}`;
          const ref = gptqQuantize(w, out, inF, prep, o, referenceGptqColumns);
          const got = gptqQuantize(w, out, inF, prep, o);
          assert.deepEqual(got.q, ref.q, `${what}: codes`);
          assert.deepEqual(got.scales, ref.scales, `${what}: scales`);
          assert.deepEqual(got.zeros, ref.zeros, `${what}: zeros`);
          assert.deepEqual(got.gIdx, ref.gIdx, `${what}: g_idx`);
          let distinct = 0;
          for (let k = 1; k < got.q.length; k++) if (got.q[k] !== got.q[0]) distinct++;
          assert.ok(distinct > got.q.length / 4, `${what}: the codes are not degenerate`);
          if (keepZeros)
            w.forEach(
              (v, k) =>
                v === 0 && assert.equal(got.q[k], got.zeros[got.gIdx[k % inF] * out + Math.floor(k / inF)], `${what}: weight ${k} stays 0`),
            );
        }
      }
    });

/** The error-propagated weights of the twin and the native kernel for one 21 × 150 job with blocks of blockSize. */
function propagated(blockSize: number): { twin: Float64Array; native: Float64Array; start: Float64Array } {
  const rng = new Rng(3);
  const [out, inF] = [21, 150];
  const prep = prepareHessian(hessian(rng, inF, 200), inF, true, 0.01);
  const w = Float64Array.from(weight(rng, out, inF, false));
  const job = (): GptqColumnsJob => ({
    w: Float64Array.from(w),
    u: prep.U,
    mask: null,
    out,
    inF,
    bits: 3,
    groupSize: 32,
    blockSize,
    codes: new Uint8Array(out * inF),
    scales: new Float32Array(5 * out),
    zeros: new Float32Array(5 * out),
  });
  const a = job(),
    b = job();
  referenceGptqColumns(a);
  native!.gptqColumns(b.w, b.u, b.mask, out, inF, 3, 32, blockSize, b.codes, b.scales, b.zeros);
  return { twin: a.w, native: b.w, start: w };
}

test('gptqColumns: in one block (no lazy update) the error-propagated weights equal the twin bit for bit', { skip }, () => {
  const { twin, native: got, start } = propagated(150);
  assert.deepEqual(got, twin);
  assert.notDeepEqual(twin, start, 'the loop updates the weights');
});

test('gptqColumns: across blocks (dgemm lazy update) the error-propagated weights agree to float64 rounding', { skip }, () => {
  const { twin, native: got } = propagated(48);
  let worst = 0,
    scale = 0;
  for (let k = 0; k < twin.length; k++) {
    worst = Math.max(worst, Math.abs(got[k] - twin[k]));
    scale = Math.max(scale, Math.abs(twin[k]));
  }
  assert.ok(worst <= 1e-13 * scale, `max |native − twin| = ${worst} against max |w| = ${scale}`);
});

test('gptqColumns: arrays too short and bad sizes are errors naming the argument', { skip }, () => {
  const u = new Float64Array(16),
    z = new Float32Array(4);
  const call = (w: Float64Array, codes: Uint8Array, bits = 4, gs = 4) => native!.gptqColumns(w, u, null, 2, 4, bits, gs, 2, codes, z, z);
  assert.throws(() => call(new Float64Array(7), new Uint8Array(8)), /gptqColumns: 'w' has 7 elements but 8/);
  assert.throws(() => call(new Float64Array(8), new Uint8Array(3)), /'codes' has 3 elements but 8/);
  assert.throws(() => call(new Float64Array(8), new Uint8Array(8), 9), /bits = 9 must be 2\.\.8/);
  assert.throws(() => call(new Float64Array(8), new Uint8Array(8), 4, 0), /groupSize must be ≥ 1/);
});
