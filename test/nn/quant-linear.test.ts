/** QuantLinear: inference runs the INT4 kernel and agrees with the dequantised float weights; training uses the floats. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { rtnQuantize, dequantize } from '../../src/compress/gptq.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { Linear } from '../../src/nn/modules.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { randn } from '../helpers/gradcheck.ts';

test('INT4 kernel path equals the dequantised float path (decode and prefill shapes)', () => {
  const rng = new T.Rng(3);
  const [out, inF] = [24, 64];
  const w = T.cast(randn(rng, [out, inF]), 'f32');
  const qw = rtnQuantize(w.data, out, inF, 4, 32);
  const lin = new Linear(T.tensor(dequantize(qw), [out, inF]));
  const q = new QuantLinear(lin, qw);
  for (const rows of [1, 3, 17]) {
    const x = T.cast(randn(rng, [rows, inF]), 'f32');
    const viaKernel = T.noGrad(() => q.forward(x)).toArray();
    const viaFloat = T.noGrad(() => lin.forward(x)).toArray();
    assertClose(viaKernel, viaFloat, `${rows} rows`, { rtol: 1e-5, atol: 1e-5 });
  }
  // with a gradient to record, the float weights are used (same numbers, differentiable)
  const x = T.cast(randn(rng, [2, inF]), 'f32');
  x.requiresGrad = true;
  const y = q.forward(x);
  T.backward(T.sum(y));
  assert.ok(x.grad?.toArray().some((g) => g !== 0));
});
