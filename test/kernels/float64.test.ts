/**
 * The reference kernels on Float64Array (exact small products, double-precision softmax, cross-entropy, RoPE,
 * RMSNorm and AdamW), and the native kernels' refusal of Float64Array.
 *
 * Run: node --import tsx --test test/kernels/float64.test.ts
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FloatArray } from '../../src/kernels/api.ts';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { seededUniform } from '../helpers/random.ts';
import { nativeKernels } from '../helpers/native.ts';
import { assertClose, ropeTables } from './helpers.ts';

describe('reference kernels on Float64Array', () => {
  const f64 = (...v: number[]) => Float64Array.from(v);

  test('gemm: exact small product, transposed views', () => {
    // A (2, 3) stored transposed as (3, 2) with lda 3 and offset 1; B (3, 2)
    const A = [
        [1, 2, 3],
        [4, 5, 6],
      ],
      B = [
        [0.1, 0.2],
        [0.3, 0.4],
        [0.5, 0.6],
      ];
    const a = new Float64Array(1 + 3 * 3);
    for (let p = 0; p < 3; p++) for (let i = 0; i < 2; i++) a[1 + p * 3 + i] = A[i][p];
    const b = f64(...B.flat());
    const c = new Float64Array(4).fill(1);
    ref.gemm(true, false, 2, 2, 3, 2, a, 1, 3, b, 0, 2, 0.5, c, 0, 2);
    const want = [0, 1].flatMap((i) => [0, 1].map((j) => 2 * (A[i][0] * B[0][j] + A[i][1] * B[1][j] + A[i][2] * B[2][j]) + 0.5));
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(c[i] - want[i]) < 1e-14, `c[${i}] = ${c[i]}, expected ${want[i]}`);
    assert.ok(c instanceof Float64Array && Math.fround(c[0]) !== c[0], 'result was rounded to float32');
  });

  test('softmax, crossEntropy, rope, rmsnorm and adamw in double precision', () => {
    const rng = seededUniform(0xf64);
    const rows = 3,
      cols = 5;
    const x = Float64Array.from({ length: rows * cols }, () => rng() * 4 - 2);
    const y = new Float64Array(rows * cols);
    ref.softmax(x, y, rows, cols, 0.5, 3, 1);
    for (let r = 0; r < rows; r++) {
      const sum = y.subarray(r * cols, (r + 1) * cols).reduce((s, v) => s + v, 0);
      assert.ok(Math.abs(sum - 1) < 1e-15, `softmax row ${r} sums to ${sum}`);
      for (let j = r + 2; j < cols; j++) assert.equal(y[r * cols + j], 0, `masked y[${r},${j}]`); // keeps j ≤ r + 1
    }

    const targets = Int32Array.from([4, -100, 0]);
    const lse = new Float64Array(rows);
    const loss = ref.crossEntropy(x, targets, lse, rows, cols, -100);
    const lseOf = (r: number) => Math.log(x.subarray(r * cols, (r + 1) * cols).reduce((s, v) => s + Math.exp(v), 0));
    assert.ok(Math.abs(loss - (lseOf(0) - x[4] + lseOf(2) - x[2 * cols])) < 1e-13, `loss ${loss}`);

    const { cos, sin } = ropeTables(4, 6, Float64Array);
    const q = Float64Array.from({ length: 2 * 6 }, () => rng());
    const rot = new Float64Array(q.length),
      back = new Float64Array(q.length);
    ref.rope(q, rot, Int32Array.from([1, 3]), cos, sin, 2, 1, 6, 1);
    ref.rope(rot, back, Int32Array.from([1, 3]), cos, sin, 2, 1, 6, -1);
    for (let i = 0; i < q.length; i++) assert.ok(Math.abs(back[i] - q[i]) < 1e-15, `rope round trip [${i}]`);

    const w = f64(1, 2, 3, 4, 5),
      out = new Float64Array(rows * cols),
      rstd = new Float64Array(rows);
    ref.rmsnorm(x, w, out, rstd, rows, cols, 1e-6);
    const ms = x.subarray(0, cols).reduce((s, v) => s + v * v, 0) / cols;
    assert.ok(Math.abs(rstd[0] - 1 / Math.sqrt(ms + 1e-6)) < 1e-15);

    const p = f64(0.5),
      m = f64(0),
      v = f64(0);
    ref.adamw(p, f64(0.2), m, v, 1, 0.01, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001);
    const mm = 0.1 * 0.2,
      vv = 0.001 * 0.04;
    const want = 0.5 * (1 - 0.001) - (0.01 / 0.1) * (mm / (Math.sqrt(vv) / Math.sqrt(0.001) + 1e-8));
    assert.ok(Math.abs(p[0] - want) < 1e-15, `adamw p ${p[0]} vs ${want}`);

    // float64 agrees with float32 to float32 precision
    const x32 = Float32Array.from(x),
      y32 = new Float32Array(rows * cols),
      y64 = new Float64Array(rows * cols);
    ref.softmax(x32, y32, rows, cols, 0.5, 0, 0);
    ref.softmax(Float64Array.from(x32), y64, rows, cols, 0.5, 0, 0);
    assertClose('softmax f32 vs f64', y32, y64);
  });

  test('the native kernels refuse Float64Array with a pointer to the reference kernels', () => {
    const y = new Float64Array(4) as FloatArray;
    assert.throws(() => nativeKernels().softmax(new Float64Array(4), y, 2, 2, 1, 0, 0), /float64 runs on the reference kernels/);
  });
});
