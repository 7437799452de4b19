/**
 * INT4 compute mode int8-act on a real INT4 model (stories260K quantised, group 32) with a KV cache: the prompt's
 * rows (M > 8: native/int4-q8-gemm.cc) and each decode step (M = 1: native/int4-q8.cc) round x to int8 the same way
 * per row, so every INT4 layer gives a token the outputs it would give that token in one batch with all the others —
 * checked bit for bit on the inputs the cached run fed each layer (before int8-act covered M > 8 the prompt ran
 * exact and decode approximated). End to end, the cached logits equal full recomputation within the approximation's
 * sensitivity: the attention of the two paths differs in float rounding (~5e-7), and a difference that crosses an
 * int8 rounding boundary moves that input by a whole int8 step, so bit equality of the logits would hold by luck.
 *
 * The mode is read once per process (src/kernels/compute-mode.ts); node --test runs each file in its own
 * process and nothing reads the mode before the first forward, so setting it here selects it for this file.
 *
 * Run: node --import tsx --test test/models/int8-act-cache.test.ts   (build the addon first: npm run build:native)
 */
process.env.LONAS_INT4_COMPUTE = 'int8-act';

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { int4Compute } from '../../src/kernels/compute-mode.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { int8ActApplies } from '../../src/kernels/int4-int8act.ts';
import { Tensor, noGrad } from '../../src/tensor/index.ts';
import { relL2 } from '../helpers/assert-close.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { quantizeSmall } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-int8-act-'));
after(() => rmSync(dir, { recursive: true, force: true }));
quantizeSmall(STORIES_F32(), dir);

test('int8-act: KV-cache decoding of an INT4 model gives each INT4 layer the outputs of one batch, bit for bit, and the logits of full recomputation', () => {
  const model = loadLlama(dir);
  assert.equal(int4Compute(), 'int8-act');
  // every call of every INT4 projection in the cached run: its input rows and output rows
  const calls = new Map<QuantLinear, { x: Float32Array[]; y: Float32Array[] }>();
  for (const layer of model.layers)
    for (const m of Object.values(layer.proj)) {
      assert.ok(m instanceof QuantLinear, 'the projections run the INT4 kernel');
      const forward = m.forward.bind(m);
      calls.set(m, { x: [], y: [] });
      m.forward = (x: Tensor) => {
        const y = forward(x);
        calls.get(m)?.x.push(Float32Array.from(x.contiguousData()));
        calls.get(m)?.y.push(Float32Array.from(y.contiguousData()));
        return y;
      };
    }
  const ids = [1, 403, 407, 261, 378, 30, 285, 284, 279, 400, 11, 266, 301, 50];
  const T = ids.length,
    V = model.config.vocabSize,
    prompt = 10;
  const cache = model.newCache(1, T);
  const cached = [model.forwardCached(Int32Array.from(ids.slice(0, prompt)), 1, prompt, cache).toArray()];
  for (let t = prompt; t < T; t++) cached.push(model.forwardCached(Int32Array.from([ids[t]]), 1, 1, cache).toArray());
  let kernelLayers = 0;
  for (const [m, c] of calls) {
    assert.equal(c.x.length, 1 + T - prompt, 'one prompt call and one call per decode step');
    const x = Float32Array.from(c.x.flatMap((a) => [...a])); // (T, in): the rows the cached run fed this layer
    calls.delete(m); // the batch below is not recorded
    const batch = noGrad(() => m.forward(new Tensor(x, [1, T, m.inFeatures])).toArray());
    // where the int8-act kernel runs; a width it cannot pack (stories260K's down_proj, 172 inputs) is the float
    // product of the dequantised weight on OpenBLAS, whose rows depend on the batch in the last bits
    if (m.inFeatures % 8 !== 0 || !int8ActApplies(m.inFeatures, m.qw.gIdx, m.qw.groupSize)) continue;
    kernelLayers++;
    assert.deepEqual(
      batch,
      c.y.flatMap((a) => [...a]),
      'prompt and decode rows = the same rows in one batch',
    );
  }
  assert.equal(kernelLayers, 6 * model.layers.length, 'q/k/v/o/gate/up of every layer ran the int8-act kernel');
  const full = noGrad(() => model.forward(Int32Array.from(ids), 1, T)).toArray(); // (1, T, V)
  const got = cached.flatMap((a) => [...a]);
  const err = relL2(got, full);
  assert.ok(err < 5e-3, `cached vs full logits: relative L2 ${err}`);
  assert.equal(got.length, T * V);
});
