/** The fine-tuning memory estimate: its activation formula against the bytes the graph really holds; the plan and the refusal. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { causalLmLoss } from '../../src/models/llama/loss.ts';
import { addLora } from '../../src/adapters/peft.ts';
import { enableQuantAware, enableSparsePeft } from '../../src/adapters/sqft.ts';
import { GIB, activationBytes, estimateTrainingMemory, planTrainingMemory } from '../../src/train/memory.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { ProjectionName } from '../../src/models/llama/model.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const ALL = [...PROJECTIONS];
const CASES: {
  name: string;
  config: Parameters<typeof tinyConfig>[0];
  dropout: number;
  targets: ProjectionName[];
  B: number;
  S: number;
  /** SQFT's adapter modes (LoRA when absent) */
  sqft?: 'sparse' | 'qa';
}[] = [
  { name: 'GQA, LoRA on all seven, dropout', config: {}, dropout: 0.1, targets: ALL, B: 2, S: 9 },
  { name: 'LoRA on q and v, no dropout', config: {}, dropout: 0, targets: ['q_proj', 'v_proj'], B: 2, S: 9 },
  {
    name: 'wider, 3 layers, all seven, dropout',
    config: { hiddenSize: 64, headDim: 16, intermediateSize: 160, numLayers: 3, numKvHeads: 4 },
    dropout: 0.1,
    targets: ALL,
    B: 3,
    S: 20,
  },
  { name: 'SparsePEFT on all seven, dropout', config: {}, dropout: 0.1, targets: ALL, B: 2, S: 9, sqft: 'sparse' },
  { name: 'QA-SparsePEFT on all seven', config: {}, dropout: 0, targets: ALL, B: 2, S: 9, sqft: 'qa' },
];

/** A 4-bit grid of one group per row (scale 0.01, zero 8): enough for the graph QA-SparsePEFT builds. */
function uniformQuant(out: number, inF: number): T.QuantParams {
  return { scales: new Float32Array(out).fill(0.01), zeros: new Float32Array(out).fill(8), gIdx: new Int32Array(inF), maxq: 15, out };
}

/** The graph's held bytes after one forward (weights and adapters excluded) and the model. */
function measured(c: (typeof CASES)[number], checkpointing: boolean) {
  const model = tinyModel(5, tinyConfig(c.config));
  const loras = addLora(model, { rank: 4, alpha: 8, dropout: c.dropout, targets: c.targets }, 11);
  if (c.sqft) enableSparsePeft(loras);
  if (c.sqft === 'qa')
    enableQuantAware(loras, (n) => uniformQuant(...(loras.find((l) => l.name === n)!.base.weightShape as [number, number])));
  const rngs = Array.from({ length: c.B }, (_, b) => new T.Rng(b));
  for (const l of loras) {
    l.training = true;
    l.rng = rngs;
  }
  const ids = Int32Array.from({ length: c.B * c.S }, (_, i) => (i * 7 + 3) % 40);
  const loss = causalLmLoss(model.forward(ids, c.B, c.S, { checkpoint: checkpointing ? { rngs } : undefined }), ids);
  // (the graph refers to the SparsePEFT bit masks without holding them: they are counted with the adapters)
  const held = T.graphBytes(loss, [...model.namedParameters().values(), ...loras.flatMap((l) => l.trainable())]);
  return { model, held };
}

for (const c of CASES) {
  for (const checkpointing of [false, true]) {
    test(`activation estimate within 0.2% of the bytes the graph holds: ${c.name}${checkpointing ? ', checkpointed' : ''}`, () => {
      const { model, held } = measured(c, checkpointing);
      const estimate = activationBytes(model, { rows: c.B, seq: c.S, checkpointing });
      // within a few bytes: the formula models the first layer's unrecorded frozen path and the rope tables too
      assert.ok(Math.abs(estimate / held - 1) < 0.002, `estimate ${estimate} B, graph ${held} B`);
    });
  }
}

test('activations grow with the tokens; checkpointing keeps one hidden state per layer', () => {
  const model = tinyModel(5, tinyConfig({ numLayers: 4 }));
  addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: ALL }, 11);
  const at = (rows: number, seq: number, checkpointing: boolean) => activationBytes(model, { rows, seq, checkpointing });
  const once = at(0, 16, false); // the RoPE tables, held once whatever the batch
  assert.equal(at(4, 16, false) - once, 2 * (at(2, 16, false) - once));
  assert.equal(at(4, 16, true), 2 * at(2, 16, true));
  assert.ok(at(2, 32, false) > 2 * at(2, 16, false), 'attention probabilities grow with seq²');
  assert.ok(at(4, 16, true) < at(4, 16, false) / 3);
  const e = estimateTrainingMemory(model, { rows: 4, seq: 16, checkpointing: false, ranks: 1 });
  assert.equal(e.total, e.weights + e.adapters + e.activations + e.workspace + e.runtime);
  assert.equal(e.weights, model.weightStorage().bytes);
  const params = model.layers.flatMap((l) => Object.values(l.proj).flatMap((p) => p.trainable())).reduce((n, t) => n + t.size, 0);
  assert.equal(e.adapters, params * 16, 'value, gradient and two AdamW moments in float32');
});

test('the plan: checkpointing off when the run fits, on (auto) when only it fits, refused with the numbers and the fix otherwise', () => {
  const model = tinyModel(5, tinyConfig({ numLayers: 4 }));
  addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: ALL }, 11);
  const run = { batchSize: 8, gradAccum: 2, seq: 32, ranks: 1, mode: 'auto' as const };
  const at = (rows: number, checkpointing: boolean) => estimateTrainingMemory(model, { rows, seq: 32, checkpointing, ranks: 1 }).total;
  const limit = (bytes: number) => ({ bytes, what: 'set by --memory-limit' });

  const roomy = planTrainingMemory(model, run, limit(GIB));
  assert.equal(roomy.checkpointing, false);
  assert.equal(roomy.retainFreed, true, 'far under the limit: freed buffers are kept for the next step');
  assert.equal(planTrainingMemory(model, run, limit(1.5 * at(8, false))).retainFreed, false, 'within 2× of the limit: not');
  assert.match(
    roomy.summary,
    /memory: estimated peak .* for batch 8 × 32 tokens, 1\.00 GiB set by --memory-limit; gradient checkpointing off: not needed/,
  );

  const between = (at(8, true) + at(8, false)) / 2;
  const tight = planTrainingMemory(model, run, limit(between));
  assert.equal(tight.checkpointing, true);
  assert.match(tight.summary, /gradient checkpointing on: needed to fit \(without it /);
  assert.equal(tight.estimate.total, at(8, true));
  assert.equal(planTrainingMemory(model, { ...run, mode: 'on' }, limit(GIB)).checkpointing, true);

  // off by request: refused, and told that checkpointing would fit
  assert.throws(
    () => planTrainingMemory(model, { ...run, mode: 'off' }, limit(between)),
    /more than the .* set by --memory-limit; fix: --gradient-checkpointing \(≈ /,
  );

  // even checkpointed the batch does not fit, a smaller one does: the largest such, with the accumulation that keeps 16 examples
  const fitsTwo = (at(2, true) + at(3, true)) / 2;
  assert.throws(
    () => planTrainingMemory(model, run, limit(fitsTwo)),
    (e: Error) => {
      assert.match(e.message, /^finetune would need about .* GiB|MiB/);
      assert.match(e.message, /weights .* \+ adapters and optimizer .* \+ activations .* \+ backward workspace .* \+ runtime/);
      assert.match(
        e.message,
        /fix: --batch-size 2 --grad-accum 8 \(≈ .*, the same 16 examples per step\); or --memory-limit GIB to try anyway/,
      );
      return true;
    },
  );
  // nothing fits: said so, with the weights' share
  assert.throws(
    () => planTrainingMemory(model, run, limit(at(1, true) - 1)),
    /nothing at this sequence length fits: even batch 1 with checkpointing needs/,
  );
});

test('SparsePEFT: the estimate counts one mask bit per adapted weight with the adapters', () => {
  const model = tinyModel(5, tinyConfig({ numLayers: 2 }));
  const loras = addLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: ALL }, 11);
  const shape = { rows: 2, seq: 8, checkpointing: false, ranks: 1 };
  const plain = estimateTrainingMemory(model, shape).adapters;
  enableSparsePeft(loras);
  const bits = loras.reduce((n, l) => n + Math.ceil((l.base.weightShape[0] * l.base.weightShape[1]) / 8), 0);
  assert.equal(estimateTrainingMemory(model, shape).adapters, plain + bits);
});
