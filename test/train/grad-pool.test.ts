/**
 * Backward hands the gradient buffers it owns and has consumed back to the scratch pool (src/tensor/autograd.ts,
 * src/tensor/scratch.ts), and the next allocations reuse them. A buffer released while something still reads it
 * would change the numbers: with every released buffer filled with NaN on release (the poison hook), training
 * equals training with the pool switched off, bit for bit — LoNAS widths and ranks, dropout, sandwich sampling,
 * SparsePEFT and activation checkpointing included — and the pool was used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import { addLora, loraModules } from '../../src/adapters/peft.ts';
import { enableSparsePeft } from '../../src/adapters/sqft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { makeBatches } from '../../src/io/batches.ts';
import { train } from '../../src/train/trainer.ts';
import { Rng } from '../../src/tensor/index.ts';
import { scratchReleases, setScratchPoison, setScratchPoolLimit } from '../../src/tensor/scratch.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const root = mkdtempSync(join(tmpdir(), 'lonas-grad-pool-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const config = tinyConfig({ vocabSize: 40, hiddenSize: 32, headDim: 8, numHeads: 4, numKvHeads: 2, intermediateSize: 64 });
const rng = new Rng(11);
const examples = Array.from({ length: 16 }, () => {
  const ids = Array.from({ length: 5 + rng.int(8) }, () => 1 + rng.int(config.vocabSize - 1));
  return { inputIds: ids, labels: ids };
});

function run(o: { sparse: boolean; sandwich: boolean; checkpointing: boolean }, tag: string) {
  const model = tinyModel(3, config);
  const loras = addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: [...PROJECTIONS] }, 2);
  if (o.sparse) enableSparsePeft(loras);
  const space = resolveSearchSpace(PRESETS.lonas, model.config, 4, [...PROJECTIONS]);
  const losses: number[] = [];
  train(
    model,
    loras,
    space,
    (e) => makeBatches(examples, 4, { padId: 0, seed: 3 + e }),
    [],
    {
      outDir: join(root, tag),
      steps: 6,
      epochs: 2,
      gradAccum: 2,
      lr: 1e-2,
      warmup: 1,
      weightDecay: 0.01,
      maxGradNorm: 1,
      seed: 9,
      checkpointEvery: 0,
      evalEvery: 0,
      sandwich: o.sandwich,
      gradientCheckpointing: o.checkpointing,
      resume: false,
      settingsKey: 'grad-pool',
    },
    (ev) => ev.type === 'step' && losses.push(ev.loss),
  );
  return { losses, adapters: loraModules(model).map((l) => [Array.from(l.loraA.data), Array.from(l.loraB.data)]) };
}

for (const o of [
  { sparse: false, sandwich: true, checkpointing: false },
  { sparse: true, sandwich: false, checkpointing: true },
]) {
  test(`training with released gradients poisoned equals training without the pool (${JSON.stringify(o)})`, () => {
    const limit = setScratchPoolLimit(0);
    const plain = run(o, 'plain');
    setScratchPoolLimit(limit);
    setScratchPoison(true);
    const before = scratchReleases();
    let pooled: ReturnType<typeof run>;
    try {
      pooled = run(o, 'pooled');
    } finally {
      setScratchPoison(false);
    }
    assert.ok(scratchReleases() - before > 100, `backward released ${scratchReleases() - before} buffers`);
    assert.deepEqual(pooled.losses, plain.losses, 'loss curve');
    assert.deepEqual(pooled.adapters, plain.adapters, 'adapter weights');
    assert.ok(plain.losses.every(Number.isFinite));
  });
}
