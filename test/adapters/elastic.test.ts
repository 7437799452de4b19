/**
 * Elastic widths (src/adapters/elastic.ts): an ElasticLinear computes x W[:o', :i']ᵀ + b[:o'] over any stored
 * form of the weight — bf16 equal to float32, and float / sparse / GPTQ-quantised bases equal to the product
 * written out by hand — and at full size runs the stored module itself (sparse and INT4 kernels included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Tensor } from '../../src/tensor/index.ts';
import { Linear, randomNormal } from '../../src/nn/modules.ts';
import { SparseLinear } from '../../src/nn/sparse-linear.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { dequantize } from '../../src/nn/quantized-weight.ts';
import { rtnQuantize } from '../../src/compress/gptq.ts';
import { ElasticLinear } from '../../src/adapters/elastic.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { bf16Weight } from '../helpers/bf16-weight.ts';

test('elastic widths: a bf16 Linear narrowed to (activeOut, activeIn) equals the float32 one, with bias', () => {
  const rng = new Rng(3);
  const { bits, f32 } = bf16Weight(rng, 70, 90);
  const bias = randomNormal(rng, [70], 1);
  const a = new Linear(bits, bias),
    b = new Linear(f32, bias);
  const ea = new ElasticLinear(a),
    eb = new ElasticLinear(b);
  for (const [o, i, rows] of [
    [70, 90, 1],
    [33, 90, 4],
    [70, 17, 20],
    [41, 60, 3],
  ]) {
    ea.activeOut = eb.activeOut = o;
    ea.activeIn = eb.activeIn = i;
    const x = randomNormal(rng, [rows, i], 1);
    assertClose(ea.forward(x).contiguousData(), eb.forward(x).contiguousData(), `linear (${o}, ${i}) × ${rows} rows`, {
      rtol: 1e-5,
      atol: 1e-5,
    });
  }
  assert.ok(a.weightStore.bf16, 'the forward passes kept the weight in bf16');
  assert.deepEqual(a.weightShape, [70, 90]);
});

/** y[r, k] = Σ_j x[r, j] W[k, j] + b[k] for k < o, j < i (W row-major with `inF` columns). */
function reference(w: ArrayLike<number>, inF: number, bias: ArrayLike<number>, x: Tensor, o: number, i: number): Float32Array {
  const rows = x.shape[0],
    xd = x.contiguousData(),
    y = new Float32Array(rows * o);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < o; k++) {
      let s = bias[k];
      for (let j = 0; j < i; j++) s += xd[r * i + j] * w[k * inF + j];
      y[r * o + k] = s;
    }
  return y;
}

test('float, sparse and GPTQ-quantised bases: every width equals the product written out, full size through their kernels', () => {
  const rng = new Rng(11);
  const out = 24,
    inF = 32;
  const w = randomNormal(rng, [out, inF], 0.5);
  w.data.forEach((_, k, a) => {
    if (k % 3 !== 0) a[k] = 0;
  }); // two thirds zeros: the sparse kernel takes it
  const bias = randomNormal(rng, [out], 1);
  const qw = rtnQuantize(w.data, out, inF, 4, 8);
  const dequantized = dequantize(qw);
  const bases: [string, Linear | QuantLinear, ArrayLike<number>][] = [
    ['float', new Linear(w, bias), w.data],
    ['sparse', new SparseLinear(new Linear(w, bias)), w.data],
    ['int4', new QuantLinear(new Linear(new Tensor(dequantized, [out, inF]), bias), qw), dequantized],
  ];
  for (const [name, stored, weights] of bases) {
    const e = new ElasticLinear(stored);
    for (const [o, i] of [
      [out, inF],
      [16, inF],
      [out, 8],
      [5, 20],
    ]) {
      e.activeOut = o;
      e.activeIn = i;
      assert.equal(e.outFeatures, o);
      assert.equal(e.inFeatures, i);
      const x = randomNormal(rng, [3, i], 1);
      assertClose(e.forward(x).contiguousData(), reference(weights, inF, bias.data, x, o, i), `${name} (${o}, ${i})`, {
        rtol: 1e-5,
        atol: 1e-5,
      });
    }
    e.resetActive();
    assert.deepEqual([e.outFeatures, e.inFeatures], [out, inF], `${name}: reset to the stored size`);
  }
});
