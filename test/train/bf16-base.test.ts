/**
 * Fine-tuning on a BF16 base kept in bfloat16 equals fine-tuning on its float32 upcast: 10 optimizer steps of
 * the LoNAS super-network (elastic widths and ranks, dropout, SparsePEFT) give the same loss curve and the same
 * adapter weights, bit for bit, and the base is still bf16 afterwards. Why bit for bit: the forward x·Wᵀ and the
 * input gradient dY·W read the bits widened exactly (bf16 → f32 is a shift) and hand the same float32 values to
 * the same sgemm with the same inner dimension, tile by tile (native/bf16.cc); the shapes here include
 * projections larger than one 1 MB tile, so the tiled path runs too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import type { WeightsMode } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import { addLora, loraModules } from '../../src/adapters/peft.ts';
import { enableSparsePeft } from '../../src/adapters/sqft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { makeBatches } from '../../src/io/batches.ts';
import { train } from '../../src/train/trainer.ts';
import { Rng } from '../../src/tensor/index.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const root = mkdtempSync(join(tmpdir(), 'lonas-bf16-train-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
// intermediate 4160: gate/up (4160, 64) and down (64, 4160) exceed one 2^18-float tile of native/bf16.cc
const config = tinyConfig({ vocabSize: 48, hiddenSize: 64, headDim: 16, numHeads: 4, numKvHeads: 2, intermediateSize: 4160 });
const dir = join(root, 'base');
saveModelDir(dir, tinyModel(8, config), { dtype: 'BF16' });

const rng = new Rng(6);
const examples = Array.from({ length: 24 }, () => {
  const ids = Array.from({ length: 6 + rng.int(10) }, () => 1 + rng.int(config.vocabSize - 1));
  return { inputIds: ids, labels: ids };
});

function run(weights: WeightsMode, sparse: boolean) {
  const model = loadLlama(dir, { weights });
  const targets = [...PROJECTIONS];
  const loras = addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets }, 2);
  if (sparse) enableSparsePeft(loras);
  const space = resolveSearchSpace(PRESETS.lonas, model.config, 4, targets);
  const losses: number[] = [];
  train(
    model,
    loras,
    space,
    (e) => makeBatches(examples, 4, { padId: 0, seed: 5 + e }),
    [],
    {
      outDir: join(root, `${weights}-${sparse}`),
      steps: 10,
      epochs: 1,
      gradAccum: 1,
      lr: 1e-2,
      warmup: 2,
      weightDecay: 0.01,
      maxGradNorm: 1,
      seed: 4,
      checkpointEvery: 0,
      evalEvery: 0,
      sandwich: false,
      resume: false,
      settingsKey: 'bf16-base',
    },
    (ev) => ev.type === 'step' && losses.push(ev.loss),
  );
  return { model, losses, adapters: loraModules(model).map((l) => [Array.from(l.loraA.data), Array.from(l.loraB.data)]) };
}

for (const sparse of [false, true]) {
  test(`10 steps on a bf16-resident base equal 10 steps on its float32 upcast, bit for bit (${sparse ? 'SparsePEFT' : 'LoRA'})`, () => {
    const bf = run('bf16', sparse),
      f32 = run('f32', sparse);
    assert.equal(bf.losses.length, 10);
    assert.deepEqual(bf.losses, f32.losses, 'loss curve');
    assert.deepEqual(bf.adapters, f32.adapters, 'adapter weights');
    assert.ok(bf.losses[9] < bf.losses[0], `training lowered the loss (${bf.losses[0]} → ${bf.losses[9]})`);
    assert.equal(bf.model.weightStorage().f32, 0, 'a base weight was widened to float32');
  });
}
