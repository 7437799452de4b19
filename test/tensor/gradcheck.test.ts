/** Float64 finite-difference checks of every op's vector-Jacobian rule (reference kernels in float64). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { vjpRules } from '../../src/tensor/vjp.ts';
import { ropeTables } from '../../src/nn/rope.ts';
import { gradcheck, randn } from '../helpers/gradcheck.ts';

const rng = new T.Rng(1234);
const covered = new Set<string>();
function check(op: keyof typeof vjpRules, inputs: T.Tensor[], f: (...xs: T.Tensor[]) => T.Tensor, tol?: number): void {
  covered.add(op);
  gradcheck(op, inputs, f, { tol });
}

test('elementwise ops', () => {
  check('add', [randn(rng, [3, 4]), randn(rng, [3, 4])], (a, b) => T.add(a, b));
  check('sub', [randn(rng, [3, 4]), randn(rng, [3, 4])], (a, b) => T.sub(a, b));
  check('mul', [randn(rng, [3, 4]), randn(rng, [3, 4])], (a, b) => T.mul(a, b));
  check('scale', [randn(rng, [5])], (a) => T.scale(a, -2.5));
  check('sum', [randn(rng, [2, 3])], (a) => T.mean(a));
  // the same input used twice exercises gradient accumulation inside the graph
  check('mul', [randn(rng, [4])], (a) => T.mul(a, a));
  // a (2, 3) against the top-left of a (3, 4) bit mask: masked entries get zero gradient
  const mask = T.BitMask.pack(Uint8Array.from([1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0]));
  check('maskMul', [randn(rng, [2, 3])], (a) => T.maskMul(a, mask, 4));
});

test('dropout: fixed mask per call, exact scaling', () => {
  const x = randn(rng, [50]);
  covered.add('dropout');
  gradcheck('dropout', [x], (a) => T.dropout(a, 0.3, new T.Rng(5)));
  const y = T.dropout(x, 0.3, new T.Rng(5)).toArray();
  const zeros = y.filter((v) => v === 0).length;
  assert.ok(zeros > 5 && zeros < 30, `about 30% dropped, got ${zeros}/50`);
  y.forEach((v, i) => assert.ok(v === 0 || Math.abs(v - x.data[i] / 0.7) < 1e-12));
});

test('views: reshape, narrow, permute, contiguous', () => {
  check('reshape', [randn(rng, [2, 6])], (a) => T.reshape(a, [3, -1]));
  check('narrow', [randn(rng, [4, 5])], (a) => T.narrow(a, 1, 1, 3));
  check('permute', [randn(rng, [2, 3, 4])], (a) => T.permute(a, [2, 0, 1]));
  check('contiguous', [randn(rng, [3, 4])], (a) => T.contiguous(T.permute(a, [1, 0])));
  const a = randn(rng, [4, 6]);
  const v = T.narrow(T.narrow(a, 0, 1, 2), 1, 2, 3);
  assert.deepEqual(v.toArray(), [a.data[8], a.data[9], a.data[10], a.data[14], a.data[15], a.data[16]]);
});

test('linear (with bias, 3-D input, sliced and transposed weights) and matmul', () => {
  check('linear', [randn(rng, [5, 7]), randn(rng, [6, 7]), randn(rng, [6])], (x, w, b) => T.linear(x, w, b));
  check('linear', [randn(rng, [2, 3, 7]), randn(rng, [4, 7])], (x, w) => T.linear(x, w));
  // row and column slices of a bigger weight, multiplied in place (elastic widths)
  check('linear', [randn(rng, [3, 4]), randn(rng, [6, 7])], (x, w) => T.linear(x, T.narrow(T.narrow(w, 0, 1, 5), 1, 2, 4)));
  // a transposed view as the weight
  check('linear', [randn(rng, [3, 4]), randn(rng, [4, 5])], (x, w) => T.linear(x, T.permute(w, [1, 0])));
  check('matmul', [randn(rng, [3, 4, 5]), randn(rng, [3, 5, 2])], (a, b) => T.matmul(a, b));
  // a frozen bfloat16 weight (6, 7): gradients to x and the bias, full size and as an elastic (5, 4) slice
  const w = T.Bf16Matrix.exactly(
    T.tensor(
      Array.from({ length: 42 }, (_, i) => (((i * 37) % 19) - 9) / 8),
      [6, 7],
    ),
  );
  check('linearBf16', [randn(rng, [2, 3, 7]), randn(rng, [6])], (x, b) => T.linearBf16(x, w, 6, 7, b));
  check('linearBf16', [randn(rng, [3, 4])], (x) => T.linearBf16(x, w, 5, 4));
  check('matmul', [randn(rng, [4, 5]), randn(rng, [5, 3])], (a, b) => T.matmul(a, b));
});

test('embedding, rmsnorm, silu, swiglu', () => {
  const ids = Int32Array.from([1, 3, 3, 0, 4, 1]);
  check('embedding', [randn(rng, [5, 3])], (w) => T.embedding(w, ids, [2, 3]));
  check('rmsnorm', [randn(rng, [3, 2, 6]), randn(rng, [6])], (x, w) => T.rmsnorm(x, w, 1e-5));
  check('silu', [randn(rng, [11], 3)], (x) => T.silu(x));
  check('swiglu', [randn(rng, [3, 5], 2), randn(rng, [3, 5])], (g, u) => T.swiglu(g, u));
});

test('rope, softmax (plain and causal), attention (GQA, causal, with a KV prefix)', () => {
  const tables = ropeTables({ headDim: 8, maxPositions: 16, theta: 10000 });
  const pos = Int32Array.from([0, 1, 2, 5, 6, 7]);
  check('rope', [randn(rng, [2, 3, 2, 8])], (x) => T.rope(x, pos, tables));
  check('softmax', [randn(rng, [2, 3, 5])], (x) => T.softmax(x, 0.7));
  check('softmax', [randn(rng, [2, 3, 5])], (x) => T.softmax(x, 1.3, 2));
  check('attention', [randn(rng, [2, 4, 4, 3]), randn(rng, [2, 4, 2, 3]), randn(rng, [2, 4, 2, 3])], (q, k, v) =>
    T.attention(q, k, v, { causal: true }),
  );
  check('attention', [randn(rng, [1, 2, 2, 3]), randn(rng, [1, 5, 1, 3]), randn(rng, [1, 5, 1, 3])], (q, k, v) =>
    T.attention(q, k, v, { causal: true }),
  );
  check('attention', [randn(rng, [1, 3, 2, 3]), randn(rng, [1, 4, 2, 3]), randn(rng, [1, 4, 2, 3])], (q, k, v) =>
    T.attention(q, k, v, { causal: false, scale: 0.4 }),
  );
  // long enough for the causal blocks (32 query rows each) that skip the masked triangle, with a KV prefix
  check('attention', [randn(rng, [1, 37, 2, 2]), randn(rng, [1, 45, 1, 2]), randn(rng, [1, 45, 1, 2])], (q, k, v) =>
    T.attention(q, k, v, { causal: true }),
  );
});

test('cross-entropy with an ignored row', () => {
  const targets = Int32Array.from([2, -100, 0, 4]);
  check('crossEntropy', [randn(rng, [4, 5], 2)], (l) => T.crossEntropy(l, targets));
});

test('fakeQuant: exact group-wise quantiser forward, straight-through (identity) gradient', () => {
  covered.add('fakeQuant');
  // 2 outputs × 4 inputs, two groups of 2 inputs; scales/zeros laid out (groups, out)
  const q = {
    scales: Float32Array.from([0.5, 0.25, 1, 2]),
    zeros: Float32Array.from([8, 7, 3, 0]),
    gIdx: Int32Array.from([0, 0, 1, 1]),
    maxq: 15,
    out: 2,
  };
  const w = T.tensor([0.26, -4.5, 1.5, 100, 0.125, 0.375, -3, 0], [2, 4], 'f64');
  w.requiresGrad = true;
  const y = T.fakeQuant(w, q);
  // row 0: (s .5, z 8) .52→1→.5 | −9+8 → clamp 0 → −4 | (s 1, z 3) 1.5→2 (half to even)→2 | 103 → clamp 15 → 12
  // row 1: (s .25, z 7) .5→0 (half to even)→0 | 1.5→2→.5 | (s 2, z 0) −1.5→−2 → clamp 0 → 0 | 0 → 0
  assert.deepEqual(y.toArray(), [0.5, -4, 2, 12, 0, 0.5, 0, 0]);
  const gy = randn(rng, [2, 4]);
  T.backward(y, gy);
  assert.deepEqual(w.grad!.toArray(), gy.toArray());
});

test('checkpoint: the recomputed block gives the gradients of x and of the weights it closes over (dropout replayed)', () => {
  // f(h) = dropout(linear(h, w)) ⊙ linear(h, w): non-linear in h and w, w a leaf only f sees; a fresh Rng(3)
  // per evaluation so every finite-difference call draws the masks the recomputation must replay
  check('checkpoint', [randn(rng, [3, 5]), randn(rng, [4, 5])], (x, w) => {
    const r = new T.Rng(3);
    return T.checkpoint((h) => T.mul(T.dropout(T.linear(h, w), 0.25, r), T.linear(h, w)), x, [r]);
  });
});

test('every op in the VJP table is gradient-checked', () => {
  const missing = Object.keys(vjpRules).filter((op) => !covered.has(op));
  assert.deepEqual(missing, [], `ops without a finite-difference check: ${missing.join(', ')}`);
});
