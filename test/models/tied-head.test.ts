/**
 * Tied checkpoints as Hugging Face tools write them: safetensors' save_model keeps one name of a shared
 * tensor (possibly lm_head.weight) and records the dropped one in __metadata__ (dropped name → kept name).
 * A tied model whose file holds only lm_head.weight, with or without that alias, is the same model as one
 * holding only the embedding (stories260K, tied).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama, loadModelDir } from '../../src/models/llama/checkpoint.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import { noGrad } from '../../src/tensor/index.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lonas-tied-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const reference = loadModelDir(STORIES_F32());
const EMBED = 'model.embed_tokens.weight';

/** stories260K with its embedding stored under lm_head.weight only, and this __metadata__ */
function headOnlyDir(name: string, metadata: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(reference.hfConfig));
  const out: Record<string, TensorToWrite> = {};
  for (const [n, t] of reference.weights)
    out[n === EMBED ? 'lm_head.weight' : n] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  writeSafetensors(join(dir, 'model.safetensors'), out, metadata);
  return dir;
}

const logits = (dir: string) =>
  noGrad(() =>
    Array.from(
      loadLlama(dir)
        .forward(Int32Array.from([1, 400, 7, 300]), 1, 4)
        .contiguousData(),
    ),
  );

for (const [what, metadata] of [
  ['without an alias', { format: 'pt' }],
  ['with a __metadata__ alias naming the embedding', { format: 'pt', [EMBED]: 'lm_head.weight' }],
] as const) {
  test(`a tied checkpoint holding only lm_head.weight (${what}) loads as the embedding-only one`, () => {
    const dir = headOnlyDir(what.replace(/\W+/g, '-'), metadata);
    const loaded = loadModelDir(dir);
    assert.deepEqual([...loaded.weights.keys()].sort(), [...reference.weights.keys()].sort());
    assert.deepEqual(Array.from(loaded.weights.get(EMBED)!.data), Array.from(reference.weights.get(EMBED)!.data));
    assert.deepEqual(loaded.unused, [], 'lm_head.weight is used, as the embedding');
    assert.deepEqual(logits(dir), logits(STORIES_F32()), 'same logits, bit for bit');
  });
}

test('an alias in __metadata__ is honoured for an untied model too (both names read the kept tensor)', () => {
  const untied = { ...reference.hfConfig, tie_word_embeddings: false };
  const dir = join(tmp, 'untied-alias');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(untied));
  const out: Record<string, TensorToWrite> = {};
  for (const [n, t] of reference.weights)
    out[n === EMBED ? 'lm_head.weight' : n] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  writeSafetensors(join(dir, 'model.safetensors'), out, { format: 'pt', [EMBED]: 'lm_head.weight' });
  const loaded = loadModelDir(dir);
  assert.deepEqual(Array.from(loaded.weights.get(EMBED)!.data), Array.from(loaded.weights.get('lm_head.weight')!.data));
  assert.deepEqual(loaded.unused, []);
  assert.deepEqual(logits(dir), logits(STORIES_F32()));
});

test('an untied model missing its embedding, with no alias, is still an error naming the tensor', () => {
  const dir = join(tmp, 'untied-missing');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...reference.hfConfig, tie_word_embeddings: false }));
  const out: Record<string, TensorToWrite> = {};
  for (const [n, t] of reference.weights)
    out[n === EMBED ? 'lm_head.weight' : n] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  writeSafetensors(join(dir, 'model.safetensors'), out, { format: 'pt' });
  assert.throws(() => loadLlama(dir), /missing tensor 'model.embed_tokens.weight'/);
});
