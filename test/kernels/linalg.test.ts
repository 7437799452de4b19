/**
 * choleskyInverseUpper on LAPACK (native/linalg.cc) against its TypeScript twin (src/kernels/linalg.ts), both
 * checked against the definition (Uᵀ U H = I, U upper: the factor is unique), gramUpper on ssyrk against its twin, and
 * GPTQ with the LAPACK factor against GPTQ with the twin's factor: the same codes, scales, zeros and g_idx; the Hessian's
 * widening (hessianFromGram) and GPTQ's dequantisation against their twins bit for bit.
 * The two factorisations round in a different order, so the factors are compared with a float64 tolerance
 * (relative 1e-9 of the largest entry) and the codes exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeKernels } from '../../src/kernels/index.ts';
import { referenceCholeskyInverseUpper, referenceGramUpper, referenceHessianFromGram } from '../../src/kernels/linalg.ts';
import { referenceDequantize } from '../../src/nn/quantized-weight.ts';
import { gptqQuantize, prepareHessian } from '../../src/compress/gptq.ts';
import { Rng } from '../../src/tensor/index.ts';

const native = nativeKernels();

/** H = Xᵀ X / T + δ I for X (T, n) standard normal: symmetric positive definite, (n, n). */
function spd(rng: Rng, n: number, tokens: number): Float64Array {
  const x = Float64Array.from({ length: tokens * n }, () => rng.normal());
  const h = new Float64Array(n * n);
  for (let t = 0; t < tokens; t++)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] += (x[t * n + i] * x[t * n + j]) / tokens;
  for (let i = 0; i < n; i++) h[i * n + i] += 1e-3;
  return h;
}

test('choleskyInverseUpper: LAPACK equals the TypeScript twin to float64 rounding, and Uᵀ U = H⁻¹', {
  skip: !native && 'native addon not built',
}, () => {
  const rng = new Rng(7);
  for (const n of [1, 2, 7, 64, 257]) {
    const h = spd(rng, n, n + 8);
    const ref = Float64Array.from(h),
      got = Float64Array.from(h);
    referenceCholeskyInverseUpper(ref, n);
    native!.choleskyInverseUpper(got, n);
    let max = 0,
      diff = 0;
    for (let k = 0; k < n * n; k++) {
      max = Math.max(max, Math.abs(ref[k]));
      diff = Math.max(diff, Math.abs(ref[k] - got[k]));
    }
    assert.ok(diff <= 1e-9 * max, `n ${n}: max |LAPACK − twin| ${diff} > 1e-9 · ${max}`);
    for (let i = 1; i < n; i++) for (let j = 0; j < i; j++) assert.equal(got[i * n + j], 0, `n ${n}: U[${i}, ${j}] below the diagonal`);
    for (let i = 0; i < n; i++) assert.ok(got[i * n + i] > 0, `n ${n}: U[${i}, ${i}] > 0 (the factor is then unique)`);
    if (n > 64) continue; // (Uᵀ U) H = I, O(n⁴) as written
    for (const [who, u] of [
      ['LAPACK', got],
      ['twin', ref],
    ] as const)
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) {
            let inv = 0;
            for (let r = 0; r <= Math.min(i, k); r++) inv += u[r * n + i] * u[r * n + k];
            s += inv * h[k * n + j];
          }
          assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-6, `${who} n ${n}: (Uᵀ U H)[${i}, ${j}] = ${s}`);
        }
  }
});

test('choleskyInverseUpper: a matrix that is not positive definite is an error naming the column', {
  skip: !native && 'native addon not built',
}, () => {
  // the trailing 2×2 block from column 1 has eigenvalue −1; with a 0 in front of it, the block from column 0 is not either
  for (const [a, col] of [
    [[4, 0, 0, 0, 1, 2, 0, 2, 1], 1],
    [[1, 0, 0, 0, 0, 0, 0, 0, 1], 1],
    [[1, 2, 0, 2, 1, 0, 0, 0, 4], 0],
  ] as const) {
    const why = new RegExp(`not positive definite: its trailing block from column ${col} is not`);
    assert.throws(() => native!.choleskyInverseUpper(Float64Array.from(a), 3), why);
    assert.throws(() => referenceCholeskyInverseUpper(Float64Array.from(a), 3), why);
  }
  assert.throws(() => native!.choleskyInverseUpper(new Float64Array(3), 2), /'a' has 3 elements but 4/);
});

test('gramUpper: ssyrk equals the TypeScript twin to float32 rounding and leaves the strictly lower part alone', {
  skip: !native && 'native addon not built',
}, () => {
  const rng = new Rng(5);
  for (const [k, n] of [
    [1, 1],
    [7, 33],
    [64, 130],
  ]) {
    const x = Float32Array.from({ length: k * n }, () => rng.normal());
    const c0 = Float32Array.from({ length: n * n }, (_, i) => (i % n) - Math.floor(i / n)); // lower part < 0, upper ≥ 0
    const got = Float32Array.from(c0),
      ref = Float32Array.from(c0);
    native!.gramUpper(x, k, n, 0.5, got);
    referenceGramUpper(x, k, n, 0.5, ref);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (j < i) {
          assert.equal(got[i * n + j], c0[i * n + j], `(${k}, ${n}): lower [${i}, ${j}] untouched`);
          continue;
        }
        const tol = 1e-5 * (k + Math.abs(ref[i * n + j]));
        assert.ok(Math.abs(got[i * n + j] - ref[i * n + j]) <= tol, `(${k}, ${n}) [${i}, ${j}]: ${got[i * n + j]} vs ${ref[i * n + j]}`);
      }
    if (k > 1) assert.notDeepEqual(got, c0, 'the product was added');
  }
  assert.throws(() => native!.gramUpper(new Float32Array(5), 2, 3, 1, new Float32Array(9)), /gramUpper: 'x' has 5 elements but 6/);
});

for (const actOrder of [false, true])
  test(`GPTQ with the LAPACK factor gives the twin's codes, scales, zeros and g_idx (act-order ${actOrder})`, {
    skip: !native && 'native addon not built',
  }, () => {
    const rng = new Rng(11);
    for (const [out, inF, gs] of [
      [24, 64, 16],
      [40, 192, 64],
      [16, 384, -1],
    ]) {
      const h = spd(rng, inF, inF * 2);
      const w = Float32Array.from({ length: out * inF }, () => rng.normal() * 0.05);
      const o = { bits: 4, groupSize: gs, actOrder, blockSize: 32 };
      const lapack = gptqQuantize(w, out, inF, prepareHessian(h, inF, actOrder, 0.01), o);
      const twin = gptqQuantize(w, out, inF, prepareHessian(h, inF, actOrder, 0.01, referenceCholeskyInverseUpper), o);
      assert.deepEqual(lapack.q, twin.q, `${out}×${inF}: codes`);
      assert.deepEqual(lapack.scales, twin.scales, `${out}×${inF}: scales`);
      assert.deepEqual(lapack.zeros, twin.zeros, `${out}×${inF}: zeros`);
      assert.deepEqual(lapack.gIdx, twin.gIdx, `${out}×${inF}: g_idx`);
    }
  });

test('hessianFromGram: native equals the TypeScript twin bit for bit (widths that are and are not whole 64-row bands)', {
  skip: !native && 'native addon not built',
}, () => {
  const rng = new Rng(11);
  for (const n of [1, 64, 70, 193]) {
    const sum = Float32Array.from({ length: n * n }, () => rng.normal());
    const want = new Float64Array(n * n),
      got = new Float64Array(n * n).fill(Number.NaN);
    referenceHessianFromGram(sum, n, 7, want);
    native!.hessianFromGram(sum, n, 7, got);
    assert.deepEqual(got, want, `n = ${n}`);
    assert.equal(got[n - 1], (2 * sum[n - 1]) / 7); // the upper triangle, mirrored
    assert.equal(got[(n - 1) * n], got[n - 1]);
  }
  assert.throws(() => native!.hessianFromGram(new Float32Array(4), 2, 0, new Float64Array(4)), /count must be > 0/);
  assert.throws(() => native!.hessianFromGram(new Float32Array(3), 2, 1, new Float64Array(4)), /'sum' has 3 elements/);
});

test('gptqDequantize: native equals the TypeScript twin bit for bit (act-order g_idx, rows not a multiple of anything)', {
  skip: !native && 'native addon not built',
}, () => {
  const rng = new Rng(12);
  const [out, inF, gs] = [13, 96, 32];
  const gIdx = Int32Array.from({ length: inF }, (_, j) => ((j * 7) % inF) >> 5); // each group 32 scattered columns
  const qw = {
    out,
    inF,
    bits: 4,
    groupSize: gs,
    q: Uint8Array.from({ length: out * inF }, () => rng.nextUint32() % 16),
    scales: Float32Array.from({ length: 3 * out }, () => Math.abs(rng.normal()) * 0.01),
    zeros: Float32Array.from({ length: 3 * out }, () => rng.nextUint32() % 16),
    gIdx,
  };
  const got = new Float32Array(out * inF);
  native!.gptqDequantize(qw.q, qw.scales, qw.zeros, qw.gIdx, out, inF, got);
  assert.deepEqual(got, referenceDequantize(qw));
  assert.ok(got.some((v) => v !== 0));
  assert.throws(
    () => native!.gptqDequantize(qw.q, qw.scales.subarray(0, out), qw.zeros, qw.gIdx, out, inF, got),
    /'scales' has 13 elements but 39/,
  );
});
