/**
 * Tied checkpoints in GGUF. The exporter names tensors from the Llama weight table (weights.ts), and a tied
 * model has no `output` tensor (llama.cpp reuses token_embd). A tied checkpoint whose file holds only
 * lm_head.weight (safetensors' dedup may keep that name), with or without a __metadata__ alias naming the
 * embedding, exports to the same GGUF as the embedding-only one, tensor by tensor (stories260K, tied), and
 * llama.cpp computes it as lonas does.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import { loadLlama, loadModelDir } from '../../src/models/llama/checkpoint.ts';
import { llamaWeightTable } from '../../src/models/llama/weights.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { openGguf, readGgufTensors } from '../engines/llama-cpp/engine.ts';
import { lonasLogProbs, maxAbsDiff } from './gguf-helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lonas-gguf-tied-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const EMBED = 'model.embed_tokens.weight';
const reference = loadModelDir(STORIES_F32());

/** Exports `dir` as <tmp>/<name>/model.gguf (one file name for all, so general.name is the same). */
function exportTo(dir: string, name: string): string {
  mkdirSync(join(tmp, name));
  const out = join(tmp, name, 'model.gguf');
  exportGguf(dir, out, 'f32');
  return out;
}

/** stories260K (config, tokenizer) with its embedding stored as lm_head.weight only, and this __metadata__. */
function headOnlyDir(name: string, metadata: Record<string, string>): string {
  const dir = join(tmp, `${name}-model`);
  cpSync(STORIES_F32(), dir, { recursive: true });
  const out: Record<string, TensorToWrite> = {};
  for (const [n, t] of reference.weights)
    out[n === EMBED ? 'lm_head.weight' : n] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  writeSafetensors(join(dir, 'model.safetensors'), out, metadata);
  return dir;
}

const embedOnly = exportTo(STORIES_F32(), 'embed-only');

test("the GGUF's tensors are the weight table's GGUF names in table order, with no output tensor when tied", async () => {
  const names = (await readGgufTensors(embedOnly)).map((t) => t.name);
  assert.deepEqual(
    names,
    llamaWeightTable(reference.config).all.map((t) => t.gguf),
  );
  assert.ok(names.includes('token_embd.weight') && !names.includes('output.weight'));
});

for (const [what, metadata] of [
  ['without an alias', { format: 'pt' }],
  ['with a __metadata__ alias naming the embedding', { format: 'pt', [EMBED]: 'lm_head.weight' }],
] as const) {
  test(`a tied checkpoint holding only lm_head.weight (${what}) exports the GGUF of the embedding-only one`, async () => {
    const dir = headOnlyDir(what.replace(/\W+/g, '-'), metadata);
    const out = exportTo(dir, what.replace(/\W+/g, '-'));
    const [got, want] = [await readGgufTensors(out), await readGgufTensors(embedOnly)];
    assert.deepEqual(
      got.map((t) => t.name),
      want.map((t) => t.name),
    );
    got.forEach((t, i) => {
      assert.deepEqual([t.dims, t.type], [want[i].dims, want[i].type], t.name);
      assert.ok(t.bytes.equals(want[i].bytes), `${t.name}: data differs from the embedding-only export`);
    });
    const ids = [1, 400, 7, 300, 21];
    const s = await openGguf(out, { contextSize: 64 });
    try {
      const diff = maxAbsDiff(await s.logProbs(ids), lonasLogProbs(loadLlama(dir), ids));
      assert.ok(diff < 1e-4, `log-probabilities differ by ${diff} (limit 1e-4)`);
    } finally {
      await s.dispose();
    }
  });
}
