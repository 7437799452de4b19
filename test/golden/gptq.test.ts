/** GPTQ on one layer with a fixed Hessian equals the PyTorch reference (AutoGPTQ fasterquant), and beats RTN. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { dequantize, gptqQuantize, rtnQuantize } from '../../src/compress/gptq.ts';
import { assertClose } from '../helpers/assert-close.ts';

const fx = new SafetensorsFile(fileURLToPath(new URL('./fixtures/gptq.safetensors', import.meta.url)));
const out = Number(fx.metadata.out_features),
  inF = Number(fx.metadata.in_features);
const H = fx.readFloat64('H').data;
const X = fx.readFloat64('X');

function outputError(w: ArrayLike<number>): number {
  const [n] = X.shape;
  let e = 0;
  const W = fx.readFloat64('W').data;
  for (let t = 0; t < n; t++)
    for (let o = 0; o < out; o++) {
      let d = 0;
      for (let j = 0; j < inF; j++) d += X.data[t * inF + j] * (W[o * inF + j] - w[o * inF + j]);
      e += d * d;
    }
  return e;
}

for (const [variant, opts] of [
  ['plain', { actOrder: false }],
  ['actorder', { actOrder: true }],
  ['sparse', { actOrder: false, keepZeros: true }],
] as const) {
  test(`GPTQ ${variant}: codes, scales, zeros and g_idx equal PyTorch`, () => {
    const W = fx.readFloat32(variant === 'sparse' ? 'sparse.W' : 'W').data;
    const r = gptqQuantize(W, out, inF, H, { bits: 4, groupSize: 128, blockSize: 128, percDamp: 0.01, ...opts });
    const q = fx.readRaw(`${variant}.q`);
    let diff = 0;
    for (let k = 0; k < q.length; k++) if (q[k] !== r.q[k]) diff++;
    assert.equal(diff, 0, `${diff} of ${q.length} codes differ`);
    assert.deepEqual(Array.from(r.gIdx), Array.from(fx.readInt32(`${variant}.g_idx`).data));
    assert.deepEqual(Array.from(r.zeros), Array.from(fx.readFloat32(`${variant}.zeros`).data));
    assertClose(r.scales, fx.readFloat32(`${variant}.scales`).data, `${variant} scales`, { rtol: 1e-6, atol: 0 });
    const deq = dequantize(r);
    assertClose(deq, fx.readFloat32(`${variant}.Q`).data, `${variant} dequantised`, { rtol: 1e-5, atol: 1e-7 });
    if (variant === 'sparse')
      W.forEach((v, k) => {
        if (v === 0) assert.equal(deq[k], 0, `zero weight ${k} stays zero`);
      });
  });
}

test('GPTQ beats round-to-nearest on the layer output error', () => {
  const W = fx.readFloat32('W').data;
  const gptq = dequantize(gptqQuantize(W, out, inF, H, { bits: 4, groupSize: 128, actOrder: false }));
  const rtn = dequantize(rtnQuantize(W, out, inF, 4, 128));
  assertClose(rtn, fx.readFloat32('rtn.Q').data, 'RTN equals the reference RTN', { rtol: 1e-5, atol: 1e-7 });
  const eG = outputError(gptq),
    eR = outputError(rtn);
  assert.ok(eG < eR, `GPTQ ${eG} < RTN ${eR}`);
  assertClose([eG], [Number(fx.metadata['plain.output_error'])], 'output error as PyTorch', { rtol: 1e-3, atol: 0 });
});
