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
import { addLora, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { PRESETS } from '../../src/nas/search-space.ts';
import { Rng } from '../../src/tensor/index.ts';
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
    assert.equal(model.weightStorage().f32, 0, 'the dense weights stay bf16 beside their packed copies');
    for (const l of model.layers) {
      for (const p of PROJECTIONS) {
        const m = l.proj[p] as SparseLinear;
        const [out, inF] = m.weightShape;
        // bf16 non-zeros (2 B each) + 1 mask bit per weight + row offsets: fewer bytes than the dense bf16 weight
        assert.ok(m.packedBytes < 2 * out * inF, `${p}: ${m.packedBytes} packed bytes ≥ dense bf16 ${2 * out * inF}`);
      }
    }
    assertClose(logits(model), logits(loadLlama(dir, { weights: 'f32' })), 'sparse vs dense logits', { rtol: 1e-5, atol: 1e-5 });
  });
});

test('a BF16 base with an elastic adapter stays in bfloat16 and computes what the float32 base does', () => {
  withBf16Checkpoint(false, (dir) => {
    const settings: LoraSettings = { rank: 4, alpha: 8, dropout: 0, targets: [...PROJECTIONS] };
    const trained = loadLlama(dir, { weights: 'f32' });
    addLora(trained, settings, 3);
    const rng = new Rng(5);
    for (const m of loraModules(trained))
      for (const t of [m.loraA, m.loraB]) for (let k = 0; k < t.data.length; k++) t.data[k] = rng.uniform() - 0.5;
    const adapter = join(dir, 'adapter');
    saveAdapter(adapter, trained, settings, { searchSpace: PRESETS.lonas });
    for (const subnet of ['maximal', 'minimal']) {
      const { model } = loadWithAdapter(dir, adapter, subnet);
      assert.equal(model.weightStorage().f32, 0, `${subnet}: no base weight widened to float32`);
      const { model: f32 } = loadWithAdapter(dir, adapter, subnet);
      for (const l of f32.layers) for (const p of PROJECTIONS) void (l.proj[p] as unknown as { base: { weight: unknown } }).base.weight; // widen every base weight
      assert.ok(f32.weightStorage().bf16 < model.weightStorage().bf16);
      assertClose(logits(model), logits(f32), `${subnet}: bf16-resident vs widened base`, { rtol: 1e-5, atol: 1e-5 });
    }
  });
});
