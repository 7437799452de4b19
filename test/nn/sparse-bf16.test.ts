/** Loading for inference (loadWithAdapter → useSparseKernels) looks at BF16 weights without widening them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneModel } from '../../src/compress/prune.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { SparseLinear } from '../../src/nn/sparse-linear.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const ids = Int32Array.from([3, 7, 1, 12, 30, 5]);
const logits = (m: LlamaModel) => m.forwardCached(ids, 1, ids.length, m.newCache(1, ids.length)).toArray();

function withBf16Checkpoint(prune: boolean, fn: (dir: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'lonas-sparse-bf16-'));
  try {
    const m = tinyModel(7, tinyConfig({ tieWordEmbeddings: true }));
    if (prune) pruneModel(m, [], { method: 'magnitude', sparsity: 0.5, targets: [...PROJECTIONS] });
    saveModelDir(join(root, 'm'), m, { dtype: 'BF16' });
    fn(join(root, 'm'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('a dense BF16 checkpoint loaded for inference keeps every weight in bfloat16', () => {
  withBf16Checkpoint(false, (dir) => {
    const { model } = loadWithAdapter(dir);
    assert.deepEqual(model.weightStorage(), loadLlama(dir).weightStorage());
    assert.equal(model.weightStorage().f32, 0, 'no weight widened to float32');
    assert.ok(model.layers.every((l) => PROJECTIONS.every((p) => !(l.proj[p] instanceof SparseLinear))));
  });
});

test('a 50%-sparse BF16 checkpoint still gets the sparse kernel, with the same logits', () => {
  withBf16Checkpoint(true, (dir) => {
    const { model } = loadWithAdapter(dir);
    assert.ok(model.layers.every((l) => PROJECTIONS.every((p) => l.proj[p] instanceof SparseLinear)));
    assertClose(logits(model), logits(loadLlama(dir, { weights: 'f32' })), 'sparse vs dense logits', { rtol: 1e-5, atol: 1e-5 });
  });
});
