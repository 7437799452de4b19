/**
 * LayerwiseCheckpoint reads each decoder layer into the float32 buffers of the layer unloaded before it (the same
 * sizes: no fresh memory, no page faults per layer): the next layer's weights are its own, whatever the previous
 * layer's buffers held when it was dropped. And large freed blocks stay in the heap (retainFreedMemory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { LayerwiseCheckpoint } from '../../src/models/llama/layerwise-checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { Linear } from '../../src/nn/modules.ts';
import { nativeKernels } from '../../src/kernels/index.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const root = mkdtempSync(join(tmpdir(), 'lonas-layerwise-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

const weightsOf = (m: LlamaModel, i: number) =>
  PROJECTIONS.map((p) => {
    const lin = m.layers[i].proj[p];
    assert.ok(lin instanceof Linear);
    return lin.weight.data as Float32Array;
  });

for (const dtype of ['F32', 'BF16'] as const) {
  test(`a layer read into the previous layer's buffers equals a fresh read (${dtype})`, () => {
    const dir = join(root, dtype);
    saveModelDir(dir, tinyModel(5, tinyConfig({ numLayers: 3 })), { dtype });
    const whole = loadLlama(dir, { weights: 'f32' });
    const ckpt = new LayerwiseCheckpoint(dir);
    try {
      const model = ckpt.model();
      let previous: Float32Array[] = [];
      for (let i = 0; i < 3; i++) {
        ckpt.loadLayer(model, i);
        const mine = weightsOf(model, i);
        if (i > 0)
          assert.ok(
            mine.every((w) => previous.includes(w)),
            `layer ${i} reuses layer ${i - 1}'s buffers`,
          );
        assert.deepEqual(mine, weightsOf(whole, i), `layer ${i}'s weights`);
        for (const w of mine) w.fill(7); // what a compression leaves in them
        previous = mine;
        ckpt.unloadLayer(model, i);
      }
    } finally {
      ckpt.close();
    }
  });
}

test('the compression process keeps freed memory for reuse (glibc mallopt through the addon)', (t) => {
  const native = nativeKernels();
  if (!native) return t.skip('no native addon');
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  assert.equal(native.retainFreedMemory(), !!glibc);
});
