/** Trainer: schedule, clipping, resume that continues bit-identically, sandwich rule, logged configurations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { cosineWithWarmup } from '../../src/train/schedule.ts';
import { clipGradNorm } from '../../src/train/grad-clip.ts';
import { train } from '../../src/train/trainer.ts';
import { TRAIN_LOG } from '../../src/nas/candidates.ts';
import type { TrainOptions } from '../../src/train/trainer.ts';
import { makeBatches } from '../../src/io/batches.ts';
import { addLora, loraModules } from '../../src/adapters/peft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

test('cosine schedule with warm-up matches transformers', () => {
  assert.equal(cosineWithWarmup(0, 2, 10), 0);
  assert.equal(cosineWithWarmup(1, 2, 10), 0.5);
  assert.equal(cosineWithWarmup(2, 2, 10), 1);
  assert.ok(Math.abs(cosineWithWarmup(6, 2, 10) - 0.5) < 1e-12);
  assert.equal(cosineWithWarmup(0, 0, 10), 1);
});

test('gradient clipping scales to the max norm and reports the norm before', () => {
  const a = T.tensor([3, 0], [2]),
    b = T.tensor([4], [1]);
  a.grad = T.tensor([3, 0], [2]);
  b.grad = T.tensor([4], [1]);
  assert.equal(clipGradNorm([a, b], 1), 5);
  assert.ok(Math.abs(a.grad.data[0] - 0.6) < 1e-6 && Math.abs(b.grad.data[0] - 0.8) < 1e-6);
});

const rng = new T.Rng(4);
const examples = Array.from({ length: 22 }, () => {
  const n = 3 + rng.int(8);
  const ids = Array.from({ length: n }, () => 1 + rng.int(38));
  return { inputIds: ids, labels: ids };
});

function run(outDir: string, over: Partial<TrainOptions> = {}, onEvent?: Parameters<typeof train>[6]) {
  const model = tinyModel(2);
  const loras = addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj'] }, 9);
  const space = resolveSearchSpace(PRESETS.lonas, model.config, 4, ['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']);
  const opts: TrainOptions = {
    outDir,
    steps: 6,
    epochs: 1,
    gradAccum: 2,
    lr: 5e-3,
    warmup: 1,
    weightDecay: 0,
    maxGradNorm: 1,
    seed: 3,
    checkpointEvery: 3,
    evalEvery: 3,
    sandwich: false,
    resume: false,
    settingsKey: 'test',
    ...over,
  };
  const result = train(
    model,
    loras,
    space,
    (e) => makeBatches(examples, 4, { padId: 0, seed: 3 + e }),
    makeBatches(examples.slice(0, 6), 3, { padId: 0, seed: 0, shuffle: false }),
    opts,
    onEvent,
  );
  return { model, result, weights: loraModules(model).flatMap((l) => [...l.loraA.data, ...l.loraB.data]) };
}

test('training lowers the loss and logs every micro-batch configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-train-'));
  const { result } = run(dir, { steps: 12 });
  const log = readFileSync(join(dir, TRAIN_LOG), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const steps = log.filter((l) => l.type === 'step');
  assert.equal(steps.length, 12);
  assert.equal(steps[0].micro.length, 2, 'one configuration per micro-batch');
  assert.ok(Object.keys(steps[0].micro[0].config).length === 6, '3 groups × 2 layers');
  const evals = log.filter((l) => l.type === 'eval');
  assert.equal(evals.length, 4);
  assert.ok(evals[3].val_loss < evals[0].val_loss, `validation loss falls: ${evals.map((e) => e.val_loss.toFixed(3)).join(' → ')}`);
  assert.ok(result.valLoss !== null);
});

test('resume after an interruption continues bit-identically (weights and log)', () => {
  const full = mkdtempSync(join(tmpdir(), 'lonas-full-'));
  const a = run(full);
  const cut = mkdtempSync(join(tmpdir(), 'lonas-cut-'));
  assert.throws(
    () =>
      run(cut, {}, (e) => {
        if (e.type === 'checkpoint' && e.step === 3) throw new Error('killed');
      }),
    /killed/,
  );
  const b = run(cut, { resume: true });
  assert.equal(b.result.steps, 6);
  assert.deepEqual(b.weights, a.weights, 'adapter weights identical to the uninterrupted run');
  const strip = (dir: string) => readFileSync(join(dir, TRAIN_LOG), 'utf8');
  assert.equal(strip(cut), strip(full), 'training log identical');
  assert.throws(() => run(cut, { resume: true, lr: 1e-3 }), /different settings/);
  assert.throws(() => run(mkdtempSync(join(tmpdir(), 'lonas-none-')), { resume: true }), /no checkpoint/);
});

test('sandwich rule trains maximal, minimal and a sampled configuration per micro-batch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-sandwich-'));
  run(dir, { steps: 2, sandwich: true });
  const step = JSON.parse(readFileSync(join(dir, TRAIN_LOG), 'utf8').split('\n')[0]);
  assert.equal(step.micro.length, 6);
  assert.equal(step.micro[0].config['layers.0.mlp_width'], 24);
  assert.equal(step.micro[1].config['layers.0.mlp_width'], 12);
});
