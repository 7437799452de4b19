/** Activation checkpointing per decoder layer: the same gradients bit for bit, dropout replayed, less memory held. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { causalLmLoss } from '../../src/models/llama/loss.ts';
import { addLora, loraModules } from '../../src/adapters/peft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet, sampleSubnet } from '../../src/nas/subnet.ts';
import { makeBatches } from '../../src/io/batches.ts';
import { train } from '../../src/train/trainer.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
const B = 3,
  S = 7;

/** A 3-layer tiny model with LoRA (dropout 0.2) whose B matrices are non-zero (so A's gradients are too). */
function adapted() {
  const model = tinyModel(5, tinyConfig({ numLayers: 3 }));
  const loras = addLora(model, { rank: 4, alpha: 8, dropout: 0.2, targets: [...TARGETS] }, 11);
  const rng = new T.Rng(12);
  for (const l of loras) l.loraB.data.forEach((_, i, b) => (b[i] = rng.normal() * 0.3));
  return { model, loras };
}

/** One forward + backward under `space` (a sampled LoNAS sub-network, or plain LoRA); the gradients, rng ends, graph bytes. */
function step(space: 'lonas' | 'none', checkpointed: boolean, replayed = true) {
  const { model, loras } = adapted();
  const resolved = resolveSearchSpace(PRESETS[space], model.config, 4, [...TARGETS]);
  const config = sampleSubnet(resolved, new T.Rng(space === 'lonas' ? 8 : 1));
  applySubnet(model, resolved, config);
  const rowRngs = Array.from({ length: B }, (_, b) => new T.Rng(100 + b));
  for (const l of loras) {
    l.training = true;
    l.rng = rowRngs;
  }
  const ids = Int32Array.from({ length: B * S }, (_, i) => (i * 7 + 3) % 40);
  const checkpoint = checkpointed ? { rngs: replayed ? rowRngs : [] } : undefined;
  const loss = causalLmLoss(model.forward(ids, B, S, { checkpoint }), ids);
  const held = T.graphBytes(loss, [...model.namedParameters().values(), ...loras.flatMap((l) => l.trainable())]);
  T.backward(loss);
  return {
    subnetwork: JSON.stringify(config) !== JSON.stringify(namedSubnet(resolved, 'maximal')),
    loss: loss.item(),
    held,
    grads: loraModules(model).flatMap((l) =>
      [l.loraA.grad!, l.loraB.grad!].map((g) => Buffer.from(new Float32Array(g.contiguousData()).buffer)),
    ),
    rngEnds: rowRngs.map((r) => r.getState()),
  };
}

for (const space of ['lonas', 'none'] as const) {
  test(`checkpointed decoder layers give the non-checkpointed gradients bit for bit (${space === 'none' ? 'plain LoRA' : 'LoNAS sub-network'}, dropout)`, () => {
    const plain = step(space, false),
      ckpt = step(space, true);
    assert.equal(plain.subnetwork, space === 'lonas', 'LoNAS: a sub-network narrower than the maximal one');
    assert.equal(ckpt.loss, plain.loss);
    assert.equal(ckpt.grads.length, plain.grads.length);
    assert.ok(
      plain.grads.every((g) => g.some((byte) => byte !== 0)),
      'every gradient is non-zero',
    );
    ckpt.grads.forEach((g, i) => assert.ok(g.equals(plain.grads[i]), `gradient ${i} identical`));
    // the streams end where one forward leaves them: the next micro-batch draws the same masks
    assert.deepEqual(ckpt.rngEnds, plain.rngEnds);
    assert.ok(ckpt.held < plain.held / 2, `graph holds ${ckpt.held} bytes checkpointed, ${plain.held} plain`);
  });
}

test('the replay is what makes them equal: without handing the streams over, the recompute draws other masks', () => {
  const plain = step('none', false),
    unreplayed = step('none', true, false);
  assert.ok(unreplayed.grads.some((g, i) => !g.equals(plain.grads[i])));
});

test('train() with gradientCheckpointing: the same losses and adapter weights bit for bit', () => {
  const rng = new T.Rng(4);
  const examples = Array.from({ length: 12 }, () => {
    const ids = Array.from({ length: 3 + rng.int(6) }, () => 1 + rng.int(38));
    return { inputIds: ids, labels: ids };
  });
  const run = (gradientCheckpointing: boolean) => {
    const model = tinyModel(2);
    const loras = addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: [...TARGETS] }, 9);
    const space = resolveSearchSpace(PRESETS.lonas, model.config, 4, [...TARGETS]);
    const losses: number[] = [];
    train(
      model,
      loras,
      space,
      (e) => makeBatches(examples, 4, { padId: 0, seed: 3 + e }),
      [],
      {
        outDir: mkdtempSync(join(tmpdir(), 'lonas-gc-')),
        steps: 4,
        epochs: 1,
        gradAccum: 2,
        lr: 5e-3,
        warmup: 1,
        weightDecay: 0,
        maxGradNorm: 1,
        seed: 3,
        checkpointEvery: 0,
        evalEvery: 0,
        sandwich: true,
        resume: false,
        settingsKey: 'test',
        gradientCheckpointing,
      },
      (e) => e.type === 'step' && losses.push(e.loss),
    );
    return { losses, weights: Buffer.from(Float32Array.from(loras.flatMap((l) => [...l.loraA.data, ...l.loraB.data])).buffer) };
  };
  const plain = run(false),
    ckpt = run(true);
  assert.deepEqual(ckpt.losses, plain.losses);
  assert.ok(ckpt.weights.equals(plain.weights));
});
