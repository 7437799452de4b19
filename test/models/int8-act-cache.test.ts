/**
 * INT4 compute mode int8-act on a real INT4 model (stories260K quantised, group 32): KV-cache decoding equals
 * full recomputation, as in the exact mode. The prompt's rows (M > 8: native/int4-q8-gemm.cc) and each decode
 * step (M = 1: native/int4-q8.cc) round x to int8 the same way per row, so the INT4 layers give a token the same
 * outputs whichever way it is computed; before int8-act covered M > 8 the prompt ran exact and decode
 * approximated, and the logits differed by the approximation (~1e-3).
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
import { noGrad } from '../../src/tensor/index.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { quantizeSmall } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-int8-act-'));
after(() => rmSync(dir, { recursive: true, force: true }));
quantizeSmall(STORIES_F32(), dir);

test('int8-act: KV-cache decoding of an INT4 model equals full recomputation (a 10-token prompt, then one token at a time)', () => {
  const model = loadLlama(dir);
  assert.equal(int4Compute(), 'int8-act');
  assert.ok(model.layers[0].proj.q_proj instanceof QuantLinear, 'the projections run the INT4 kernel');
  const ids = [1, 403, 407, 261, 378, 30, 285, 284, 279, 400, 11, 266, 301, 50];
  const T = ids.length,
    V = model.config.vocabSize,
    prompt = 10;
  const full = noGrad(() => model.forward(Int32Array.from(ids), 1, T)).toArray(); // (1, T, V)
  const cache = model.newCache(1, T);
  const first = model.forwardCached(Int32Array.from(ids.slice(0, prompt)), 1, prompt, cache).toArray();
  assertClose(first, full.slice(0, prompt * V), 'prompt logits', { rtol: 1e-5, atol: 1e-5 });
  for (let t = prompt; t < T; t++) {
    const step = model.forwardCached(Int32Array.from([ids[t]]), 1, 1, cache).toArray();
    assertClose(step, full.slice(t * V, (t + 1) * V), `decode logits at ${t}`, { rtol: 1e-5, atol: 1e-5 });
  }
});
