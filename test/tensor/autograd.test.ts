/** Autograd behaviour: accumulation, no-grad, frozen weights cost no weight-gradient GEMM, graph release, views. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { referenceKernels } from '../../src/kernels/index.ts';
import { randn } from '../helpers/gradcheck.ts';

const rng = new T.Rng(99);

test('backward accumulates into .grad across calls (gradient accumulation)', () => {
  const w = randn(rng, [3, 4]);
  w.requiresGrad = true;
  const x = randn(rng, [2, 4]);
  T.backward(T.sum(T.linear(x, w)));
  const once = w.grad!.toArray();
  T.backward(T.sum(T.linear(x, w)));
  w.grad!.toArray().forEach((g, i) => assert.ok(Math.abs(g - 2 * once[i]) < 1e-12));
  T.zeroGrad([w]);
  assert.equal(w.grad, null);
});

test('noGrad records nothing; results do not require grad', () => {
  const w = randn(rng, [3, 4]);
  w.requiresGrad = true;
  const y = T.noGrad(() => T.linear(randn(rng, [2, 4]), w));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  assert.throws(() => T.backward(T.sum(y)), /does not require a gradient/);
});

test('a frozen weight costs no weight-gradient GEMM', () => {
  const gemm = referenceKernels.gemm;
  let calls = 0;
  (referenceKernels as { gemm: typeof gemm }).gemm = (...args: Parameters<typeof gemm>) => {
    calls++;
    return gemm(...args);
  };
  try {
    const x = randn(rng, [5, 4]);
    x.requiresGrad = true;
    const frozen = randn(rng, [3, 4]);
    calls = 0;
    T.backward(T.sum(T.linear(x, frozen)));
    assert.equal(calls, 2, 'forward + input gradient only');
    assert.equal(frozen.grad, null);
    const trainable = randn(rng, [3, 4]);
    trainable.requiresGrad = true;
    calls = 0;
    T.backward(T.sum(T.linear(x, trainable)));
    assert.equal(calls, 3, 'forward + input gradient + weight gradient');
    // nothing trainable upstream: the input gradient GEMM is skipped too
    const x2 = randn(rng, [5, 4]);
    calls = 0;
    T.backward(T.sum(T.linear(x2, trainable)));
    assert.equal(calls, 2, 'forward + weight gradient');
  } finally {
    (referenceKernels as { gemm: typeof gemm }).gemm = gemm;
  }
});

test('the graph is released after backward (no silent second pass)', () => {
  const w = randn(rng, [2, 2]);
  w.requiresGrad = true;
  const loss = T.sum(T.mul(w, w));
  T.backward(loss);
  assert.equal(loss.node, null);
});

test('gradient through a slice reaches only the sliced part of the weight', () => {
  const w = randn(rng, [4, 6]);
  w.requiresGrad = true;
  const x = randn(rng, [3, 2]);
  T.backward(T.sum(T.linear(x, T.narrow(T.narrow(w, 0, 1, 2), 1, 3, 2))));
  const g = w.grad!.toArray();
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 6; c++) {
      const inside = r >= 1 && r < 3 && c >= 3 && c < 5;
      assert.equal(g[r * 6 + c] !== 0, inside, `grad[${r},${c}]`);
    }
  }
});

test('shape errors name the op and the shapes', () => {
  assert.throws(() => T.linear(randn(rng, [2, 3]), randn(rng, [4, 5])), /linear: input \[2, 3\] does not match weight \[4, 5\]/);
  assert.throws(() => T.add(randn(rng, [2]), randn(rng, [3])), /add: shapes \[2\] and \[3\] differ/);
  assert.throws(() => T.reshape(randn(rng, [2, 3]), [4, 2]), /reshape/);
  assert.throws(() => T.crossEntropy(randn(rng, [2, 3]), Int32Array.from([0, 7])), /target 7 at row 1/);
  assert.throws(() => T.embedding(randn(rng, [4, 2]), Int32Array.from([4])), /token id 4/);
});
