/**
 * stories260K exported to GGUF runs in llama.cpp (node-llama-cpp 3.21.1, CPU) exactly as in lonas: same
 * prompt tokens, same greedy continuation, the same next-token distribution at every prompt position.
 * node-llama-cpp exposes the softmax of the logits, not the logits, so logits are compared as
 * log-probabilities (logits minus their log-sum-exp: only the constant per-row shift is lost).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import type { GgufOutType } from '../../src/export/gguf/convert.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { lonas } from '../helpers/cli.ts';
import { openGguf } from '../engines/llama-cpp/engine.ts';
import { lonasLogProbs, maxAbsDiff, meanKl } from './gguf-helpers.ts';
import { dequantizeBlocks, quantizeBlocks } from '../../src/export/gguf/quants.ts';
import type { BlockType } from '../../src/export/gguf/quants.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-gguf-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const model = loadLlama(STORIES_F32());
const tokenizer = loadTokenizer(STORIES_F32());
const PROMPT = 'Once upon a time, Tom and his dog went to the park. They saw';

function exported(type: GgufOutType): string {
  const out = join(dir, `stories260K.${type}.gguf`);
  exportGguf(STORIES_F32(), out, type);
  return out;
}

test('f32: llama.cpp tokenizes, continues greedily for 128 tokens and scores the prompt exactly as lonas', async () => {
  const s = await openGguf(exported('f32'));
  try {
    const ids = tokenizer.encode(PROMPT, { addBos: false });
    assert.deepEqual(s.tokenize(PROMPT), ids, 'prompt token ids');
    const prompt = [tokenizer.bosId!, ...ids];
    const ours = generate(model, [prompt], { maxNewTokens: 128, strategy: { kind: 'greedy' }, eosIds: [] })[0];
    const theirs = await s.greedy(prompt, 128);
    assert.equal(theirs.length, 128);
    assert.deepEqual(theirs, ours, 'greedy continuation, token for token');
    const diff = maxAbsDiff(await s.logProbs(prompt), lonasLogProbs(model, prompt));
    assert.ok(diff < 1e-4, `prompt log-probabilities differ by ${diff} (limit 1e-4)`);
  } finally {
    await s.dispose();
  }
});

// Error budgets, as mean KL divergence of the next-token distributions over the prompt (nats):
//  - from lonas's f32 model: what the format costs (measured 3.2e-4 for q8_0, 0.075 for q4_0, Q4_1 below);
//  - from lonas running the dequantized blocks the file holds: only llama.cpp's own rounding of the
//    activations to q8_0 inside its dot products is left (measured 1.7e-4 / 3.2e-4); a misread block
//    layout (nibble order, scales, row order) would be far above it.
for (const [type, budget] of [
  ['q8_0', 1e-3],
  ['q4_0', 0.2],
  ['q4_1', 0.2],
] as [GgufOutType, number][]) {
  test(`${type}: the export runs in llama.cpp within the format's error budget of lonas's logits`, async () => {
    const s = await openGguf(exported(type));
    try {
      const prompt = [tokenizer.bosId!, ...tokenizer.encode(PROMPT, { addBos: false })];
      const theirs = await s.logProbs(prompt);
      const fromF32 = meanKl(lonasLogProbs(model, prompt), theirs);
      const fromBlocks = meanKl(lonasLogProbs(dequantizedModel(type), prompt), theirs);
      process.stderr.write(
        `${type}: mean KL from lonas f32 ${fromF32.toExponential(2)}, from lonas on the dequantized blocks ${fromBlocks.toExponential(2)}\n`,
      );
      assert.ok(fromF32 > 0 && fromF32 < budget, `${type}: KL from f32 ${fromF32} (budget ${budget})`);
      assert.ok(
        fromBlocks < 1e-3,
        `${type}: KL from the dequantized blocks ${fromBlocks} (llama.cpp's activation rounding stays below 1e-3)`,
      );
      assert.equal((await s.greedy(prompt, 16)).length, 16);
    } finally {
      await s.dispose();
    }
  });
}

// f16 / bf16 round each weight (10 / 7 mantissa bits); llama.cpp also rounds the activations to that type
// in its dot products. Budgets (mean KL from lonas f32) ≈ 10× the measured values (7e-8, 5.5e-5).
for (const [type, budget] of [
  ['f16', 1e-6],
  ['bf16', 5e-4],
] as [GgufOutType, number][]) {
  test(`${type}: the export runs in llama.cpp close to lonas's f32 logits`, async () => {
    const s = await openGguf(exported(type));
    try {
      const prompt = [tokenizer.bosId!, ...tokenizer.encode(PROMPT, { addBos: false })];
      const kl = meanKl(lonasLogProbs(model, prompt), await s.logProbs(prompt));
      process.stderr.write(`${type}: mean KL from lonas f32 ${kl.toExponential(2)}\n`);
      assert.ok(Math.abs(kl) < budget, `${type}: KL from f32 ${kl} (budget ${budget}; float32 probabilities can make a tiny KL negative)`);
    } finally {
      await s.dispose();
    }
  });
}

/** stories260K with every 2-D weight whose rows hold whole 32-value blocks replaced by its `type` blocks' values (what the GGUF stores). */
function dequantizedModel(type: GgufOutType): LlamaModel {
  const m = loadLlama(STORIES_F32());
  const t = type.toUpperCase() as BlockType;
  for (const [, w] of m.namedParameters())
    if (w.shape.length === 2 && w.shape[1] % 32 === 0)
      w.data.set(dequantizeBlocks(quantizeBlocks(w.data as Float32Array, w.shape[1], t), t));
  return m;
}

test('lonas export reports the quantization error and the tensors stored as F16 instead', () => {
  const out = lonas('export', '--model', STORIES_F32(), '--format', 'gguf', '--type', 'q8_0', '--out', join(dir, 'cli.q8_0.gguf'));
  assert.match(out, /architecture\s+llama\n/);
  assert.match(out, /quantized\s+31 tensors, max \|error\| [1-9]\.\d\de-\d/);
  for (let l = 0; l < 5; l++)
    assert.match(out, new RegExp(`blk\\.${l}\\.ffn_down\\.weight \\(F16\\): rows of 172 values are not a multiple of 32`));
});
