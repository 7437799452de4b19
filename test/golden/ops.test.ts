/** Every op against PyTorch 1.13 (fixture from test/golden/gen/generate.py), float32, active kernels. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { ropeTables } from '../../src/nn/rope.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { assertClose } from '../helpers/assert-close.ts';

const fx = new SafetensorsFile(fileURLToPath(new URL('./fixtures/ops.safetensors', import.meta.url)));
const get = (name: string, requiresGrad = false) => {
  const { data, shape } = fx.readFloat32(name);
  return new T.Tensor(data, shape, { requiresGrad });
};
const ints = (name: string) => fx.readInt32(name).data;
const meta = (key: string) => parseFloat(fx.metadata[key]);
// float32 vs PyTorch float32: different summation orders, so ~1e-6 relative differences are expected.
const TOL = { rtol: 1e-5, atol: 1e-6 };

/** Runs y = f(inputs), backward with the fixture's gy, and compares y and each named input gradient. */
function checkOp(op: string, inputNames: string[], f: (...xs: T.Tensor[]) => T.Tensor, gradNames = inputNames.map((n) => `g${n}`)): void {
  const inputs = inputNames.map((n) => get(`${op}.${n}`, true));
  const y = f(...inputs);
  assertClose(y.toArray(), get(`${op}.y`).toArray(), `${op}.y`, TOL);
  T.backward(y, get(`${op}.gy`));
  inputs.forEach((x, i) => assertClose(x.grad!.toArray(), get(`${op}.${gradNames[i]}`).toArray(), `${op}.${gradNames[i]}`, TOL));
}

test('linear, linear without bias on 3-D input, bmm', () => {
  checkOp('linear', ['x', 'w', 'b'], (x, w, b) => T.linear(x, w, b));
  checkOp('linear_nobias', ['x', 'w'], (x, w) => T.linear(x, w));
  checkOp('bmm', ['a', 'b'], (a, b) => T.matmul(a, b));
});

test('softmax and causal softmax over a KV prefix', () => {
  checkOp('softmax', ['x'], (x) => T.softmax(x, meta('softmax.scale')));
  checkOp('softmax_causal', ['x'], (x) => T.softmax(x, meta('softmax_causal.scale'), x.shape[3] - x.shape[2]));
});

test('cross-entropy with ignore index', () => {
  const logits = get('cross_entropy.logits', true);
  const loss = T.crossEntropy(logits, ints('cross_entropy.targets'), meta('cross_entropy.ignore_index'));
  assertClose([loss.item()], get('cross_entropy.loss').toArray(), 'cross_entropy.loss', TOL);
  T.backward(loss);
  assertClose(logits.grad!.toArray(), get('cross_entropy.glogits').toArray(), 'cross_entropy.glogits', TOL);
});

test('rmsnorm, silu, swiglu, embedding', () => {
  checkOp('rmsnorm', ['x', 'w'], (x, w) => T.rmsnorm(x, w, meta('rmsnorm.eps')));
  checkOp('silu', ['x'], (x) => T.silu(x));
  checkOp('swiglu', ['g', 'u'], (g, u) => T.swiglu(g, u));
  const w = get('embedding.w', true);
  const ids = fx.readInt32('embedding.ids');
  const y = T.embedding(w, ids.data, ids.shape);
  assertClose(y.toArray(), get('embedding.y').toArray(), 'embedding.y', TOL);
  T.backward(y, get('embedding.gy'));
  assertClose(w.grad!.toArray(), get('embedding.gw').toArray(), 'embedding.gw', TOL);
});

test('rope (theta 1e4 and 1e6, offset positions)', () => {
  for (const op of ['rope', 'rope_theta1e6']) {
    const x = get(`${op}.x`);
    const [B, Tn, , D] = x.shape;
    const p = ints(`${op}.positions`);
    const positions = Int32Array.from({ length: B * Tn }, (_, i) => p[i % Tn]);
    const tables = ropeTables({ headDim: D, maxPositions: 64, theta: meta(`${op}.theta`) });
    checkOp(op, ['x'], (x) => T.rope(x, positions, tables));
  }
});

test('attention: GQA causal, and queries after a KV prefix', () => {
  for (const op of ['attention', 'attention_cache']) {
    checkOp(op, ['q', 'k', 'v'], (q, k, v) => T.attention(q, k, v, { causal: true, scale: meta(`${op}.scale`) }));
  }
});

test('sum, mean, mul + add', () => {
  const x = get('sum_mean.x');
  assertClose([T.sum(x).item()], get('sum_mean.sum').toArray(), 'sum', TOL);
  assertClose([T.mean(x).item()], get('sum_mean.mean').toArray(), 'mean', TOL);
  checkOp('mul_add', ['a', 'b'], (a, b) => T.add(T.mul(a, b), a));
});

test('AdamW: three steps equal torch.optim.AdamW', () => {
  const p = get('adamw.p0', true);
  const opt = new AdamW([p], {
    lr: meta('adamw.lr'),
    beta1: meta('adamw.beta1'),
    beta2: meta('adamw.beta2'),
    eps: meta('adamw.eps'),
    weightDecay: meta('adamw.weight_decay'),
  });
  for (let s = 1; s <= 3; s++) {
    p.grad = get(`adamw.g${s}`);
    opt.update();
    assertClose(p.toArray(), get(`adamw.p${s}`).toArray(), `adamw.p${s}`, { rtol: 1e-6, atol: 1e-7 });
  }
  assert.equal(opt.step, 3);
});
