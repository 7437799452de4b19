/**
 * MLP channel reordering by importance (issue #4): the permutation is exact, the importance order puts the
 * highest scores first, and adapters trained on a reordered super-network save in the base's own channel
 * order, reload (lonas re-applies the order) and extract to the same functions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { addLora, loadAdapter, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { enableSparsePeft } from '../../src/adapters/sqft.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { resolveSearchSpace } from '../../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet } from '../../src/nas/subnet.ts';
import {
  invertPermutation,
  mlpChannelOrder,
  orderByScore,
  permuteMlpChannels,
  validateChannelOrder,
} from '../../src/adapters/channel-order.ts';
import { activationScores, magnitudeScores, reorderByImportance } from '../../src/nas/importance.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { extractToDir } from '../../src/nas/extract.ts';
import { train } from '../../src/train/trainer.ts';
import { makeBatches } from '../../src/io/batches.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const ALL: LoraSettings = {
  rank: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};
const SPACE: SearchSpaceSpec = {
  groups: [
    { kind: 'rank', modules: ['q_proj', 'k_proj', 'v_proj'], share: 'layer', fractions: [1, 0.5] },
    { kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] },
  ],
};
const ids = Int32Array.from([1, 5, 9, 3, 22, 17, 8, 2, 30, 11, 4, 6]);
const logits = (m: LlamaModel) => T.noGrad(() => m.forward(ids, 2, 6)).toArray();
const tmp = (what: string) => mkdtempSync(join(tmpdir(), `lonas-reorder-${what}-`));
const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const layerWeights = (m: LlamaModel, l: number) =>
  ['gate_proj', 'up_proj', 'down_proj'].map((p) => [...m.namedParameters().get(`model.layers.${l}.mlp.${p}.weight`)!.data]);

function randomOrder(m: LlamaModel, seed: number): number[][] {
  const rng = new T.Rng(seed);
  return m.config.layers.map((s) => rng.shuffle(Array.from({ length: s.intermediateSize }, (_, j) => j)));
}

test('permuting MLP channels leaves the function unchanged (base alone; with LoRA and SparsePEFT masks)', () => {
  const m = tinyModel(3);
  const before = logits(m);
  permuteMlpChannels(m, randomOrder(m, 1));
  assert.ok(maxAbsDiff(logits(m), before) <= 1e-6, `base: max |Δlogit| ${maxAbsDiff(logits(m), before)}`);
  assert.notDeepEqual(layerWeights(m, 0), layerWeights(tinyModel(3), 0), 'the weights really moved');

  const w = tinyModel(4);
  w.layers[1].proj.down_proj.baseTensors()[0].data.forEach((_, i, a) => {
    if (i % 3 === 0) a[i] = 0;
  }); // a sparse base for the masks
  const loras = addLora(w, ALL, 2);
  enableSparsePeft(loras);
  const rng = new T.Rng(5);
  for (const l of loras) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.2));
  const ref = logits(w);
  permuteMlpChannels(w, randomOrder(w, 2));
  assert.ok(maxAbsDiff(logits(w), ref) <= 1e-6, `with adapters: max |Δlogit| ${maxAbsDiff(logits(w), ref)}`);
});

test('a permuted model at a narrow width equals the unpermuted model with exactly the chosen channels', () => {
  // keep channels {order[0..w'-1]}: zeroing every other channel's down column in the original gives the same function
  const m = tinyModel(6),
    order = randomOrder(m, 3),
    keep = 12;
  const space = resolveSearchSpace(SPACE, m.config, 4, []);
  const ref = tinyModel(6);
  ref.layers.forEach((layer, l) => {
    const down = layer.proj.down_proj.baseTensors()[0],
      I = down.shape[1];
    const kept = new Set(order[l].slice(0, keep));
    for (let r = 0; r < down.shape[0]; r++) for (let j = 0; j < I; j++) if (!kept.has(j)) down.data[r * I + j] = 0;
  });
  permuteMlpChannels(m, order);
  applySubnet(m, space, Object.fromEntries(space.groups.map((g) => [g.id, keep])));
  assertClose(logits(m), logits(ref), 'width 12 of 24', { rtol: 0, atol: 1e-6 });
});

test('magnitude importance: the product ‖γ⊙gate_j‖·‖γ⊙up_j‖·‖down_:,j‖ orders hand-made channels', () => {
  const m = tinyModel(1, tinyConfig({ numLayers: 1, intermediateSize: 6, hiddenSize: 8, numHeads: 2, numKvHeads: 1 }));
  const [gate, up, down] = (['gate_proj', 'up_proj', 'down_proj'] as const).map((p) => m.layers[0].proj[p].baseTensors()[0].data);
  const C = 8,
    I = 6;
  const gamma = m.layers[0].postAttentionNorm.weight.data;
  gamma.fill(1);
  gamma[7] = 0; // the norm zeroes input dimension 7
  // channel j: gate row = g_j e_0, up row = u_j e_1, down column = d_j e_2
  const g = [1, 2, 1, 100, 1, 0],
    u = [1, 1, 3, 1, 1, 5],
    d = [1, 1, 1, 0, 2, 1];
  gate.fill(0);
  up.fill(0);
  down.fill(0);
  for (let j = 0; j < I; j++) {
    gate[j * C] = g[j];
    up[j * C + 1] = u[j];
    down[2 * I + j] = d[j];
  }
  gate[5 * C + 7] = 50; // large, but on the dimension the norm zeroes: γ-folding sees it as 0
  const scores = [...magnitudeScores(m)[0]];
  assert.deepEqual(scores, [1, 2, 3, 0, 2, 0]);
  assert.deepEqual(orderByScore(scores), [2, 1, 4, 0, 3, 5], 'highest first; ties keep the lower index first');
  const before = logits(m);
  const order = reorderByImportance(m, 'magnitude');
  assert.deepEqual(order, [[2, 1, 4, 0, 3, 5]]);
  assert.deepEqual(mlpChannelOrder(m), order);
  assert.deepEqual([...magnitudeScores(m)[0]], [3, 2, 2, 1, 0, 0], 'after reordering, the scores are descending');
  assert.ok(maxAbsDiff(logits(m), before) <= 1e-6);
});

test('activation importance: ‖down_:,j‖ · RMS of down_proj input j over calibration tokens', () => {
  const m = tinyModel(2);
  const samples = [Int32Array.from([1, 4, 7, 9, 12]), Int32Array.from([1, 30, 2, 8])];
  const [gate, down] = [m.layers[0].proj.gate_proj.baseTensors()[0], m.layers[0].proj.down_proj.baseTensors()[0]];
  const C = gate.shape[1],
    I = down.shape[1];
  gate.data.fill(0, 5 * C, 6 * C); // channel 5: act(0)·up = 0 on every token → score 0
  for (let r = 0; r < down.shape[0]; r++) down.data[r * I + 9] *= 1000; // channel 9: the largest contribution by far
  const s = activationScores(m, samples)[0];
  assert.equal(s[5], 0);
  assert.equal(orderByScore(s)[0], 9);
  assert.equal(orderByScore(s)[I - 1], 5);
  // the score is the RMS norm of channel j's contribution down[:, j]·a_j, measured here by brute force
  const acts: number[][] = [];
  const downProj = m.layers[0].proj.down_proj,
    forward = downProj.forward.bind(downProj);
  downProj.forward = (x: T.Tensor) => {
    acts.push([...x.contiguousData()]);
    return forward(x);
  }; // x (1, T, I)
  for (const smp of samples) T.noGrad(() => m.forward(smp, 1, smp.length));
  delete (downProj as Partial<typeof downProj>).forward; // back to the class method
  const a = acts.flat(),
    n = a.length / I;
  const col = (j: number) => Math.hypot(...Array.from({ length: down.shape[0] }, (_, r) => down.data[r * I + j]));
  for (const j of [0, 3, 9]) {
    const rms = Math.sqrt(Array.from({ length: n }, (_, t) => a[t * I + j] ** 2).reduce((x, y) => x + y, 0) / n);
    assert.ok(Math.abs(s[j] - col(j) * rms) <= 1e-4 * Math.max(1, s[j]), `channel ${j}: ${s[j]} vs ${col(j) * rms}`);
  }
});

/** A reordered super-network trained a few steps, the base saved to disk un-permuted beforehand. */
function trainedReordered(mode: 'magnitude' | 'off') {
  const baseDir = tmp('base');
  saveModelDir(baseDir, tinyModel(7));
  const model = loadLlama(baseDir);
  if (mode !== 'off') reorderByImportance(model, mode);
  const loras = addLora(model, ALL, 9);
  const space = resolveSearchSpace(SPACE, model.config, 4, ALL.targets);
  const rng = new T.Rng(4);
  const examples = Array.from({ length: 12 }, () => {
    const xs = Array.from({ length: 4 + rng.int(6) }, () => 1 + rng.int(38));
    return { inputIds: xs, labels: xs };
  });
  train(model, loras, space, (e) => makeBatches(examples, 4, { padId: 0, seed: e }), [], {
    outDir: tmp('train'),
    steps: 4,
    epochs: 1,
    gradAccum: 2,
    lr: 2e-2,
    warmup: 0,
    weightDecay: 0,
    maxGradNorm: 1,
    seed: 3,
    checkpointEvery: 0,
    evalEvery: 0,
    sandwich: true,
    resume: false,
    settingsKey: 'reorder-test',
  });
  const adapterDir = tmp('adapter');
  saveAdapter(adapterDir, model, ALL, { searchSpace: SPACE });
  return { baseDir, adapterDir, model, space };
}

test('reorder → train → save → load into a fresh base: same logits at maximal and minimal; PEFT (no order) matches at maximal', () => {
  const { baseDir, adapterDir, model, space } = trainedReordered('magnitude');
  assert.ok(
    loraModules(model).some((l) => l.name.endsWith('up_proj') && l.loraB.data.some((v) => v !== 0)),
    'the adapters trained',
  );
  const meta = JSON.parse(readFileSync(join(adapterDir, 'lonas_adapter.json'), 'utf8'));
  assert.deepEqual(meta.mlp_channel_order, mlpChannelOrder(model));
  for (const sub of ['maximal', 'minimal'] as const) {
    applySubnet(model, space, namedSubnet(space, sub));
    const expected = logits(model);
    const loaded = loadWithAdapter(baseDir, adapterDir, sub);
    assert.deepEqual(loaded.config, namedSubnet(space, sub));
    assertClose(logits(loaded.model), expected, `lonas reload at ${sub}`, { rtol: 0, atol: 1e-5 });
  }
  // PEFT reads adapter_model.safetensors + adapter_config.json only: without lonas_adapter.json the
  // un-permuted base and the saved tensors must give the super-network's maximal function
  applySubnet(model, space, namedSubnet(space, 'maximal'));
  const peftDir = tmp('peft');
  for (const f of ['adapter_model.safetensors', 'adapter_config.json']) writeFileSync(join(peftDir, f), readFileSync(join(adapterDir, f)));
  const peft = loadLlama(baseDir);
  assert.equal(loadAdapter(peft, peftDir).channelOrder, null);
  assertClose(logits(peft), logits(model), 'PEFT view at maximal', { rtol: 0, atol: 1e-5 });
  const narrow = resolveSearchSpace(SPACE, peft.config, 4, ALL.targets);
  applySubnet(peft, narrow, namedSubnet(narrow, 'minimal'));
  applySubnet(model, space, namedSubnet(space, 'minimal'));
  assert.ok(
    maxAbsDiff(logits(peft), logits(model)) > 1e-3,
    'without the order, the minimal width would slice other channels (the order matters)',
  );
});

test('the extracted minimal model (merged and unmerged) equals the reordered super-network at minimal', () => {
  const { baseDir, adapterDir, model, space } = trainedReordered('magnitude');
  applySubnet(model, space, namedSubnet(space, 'minimal'));
  const expected = logits(model);
  for (const merge of [true, false]) {
    const loaded = loadWithAdapter(baseDir, adapterDir, 'minimal'); // as `lonas extract` loads it
    const out = tmp(`extract-${merge}`);
    const { adapterDir: slicedAdapter } = extractToDir(loaded.model, out, { merge });
    const small = loadLlama(out);
    if (slicedAdapter) {
      assert.equal(
        loadAdapter(small, slicedAdapter).channelOrder,
        null,
        'the sliced base is stored in the reordered order; its adapter carries no order',
      );
    }
    assert.equal(small.config.layers[0].intermediateSize, 12);
    assertClose(logits(small), expected, `extracted (${merge ? 'merged' : 'unmerged'})`, { rtol: 1e-5, atol: 1e-5 });
  }
});

test('without reordering nothing changes: no order saved, the loaded base keeps its weights', () => {
  const { baseDir, adapterDir, model } = trainedReordered('off');
  assert.equal(mlpChannelOrder(model), null);
  assert.deepEqual(Object.keys(JSON.parse(readFileSync(join(adapterDir, 'lonas_adapter.json'), 'utf8'))).sort(), [
    'format',
    'mode',
    'search_space',
  ]);
  const loaded = loadWithAdapter(baseDir, adapterDir, 'minimal');
  assert.deepEqual(layerWeights(loaded.model, 1), layerWeights(loadLlama(baseDir), 1));
  rmSync(baseDir, { recursive: true });
});

test('a malformed mlp_channel_order names the file and the field', () => {
  const { baseDir, adapterDir } = trainedReordered('magnitude');
  const path = join(adapterDir, 'lonas_adapter.json');
  const meta = JSON.parse(readFileSync(path, 'utf8'));
  const good = meta.mlp_channel_order as number[][];
  const cases: [unknown, RegExp][] = [
    [[good[0], good[1].slice(1)], /lonas_adapter\.json: field "mlp_channel_order"\[1\]: has 23 entries, layer 1 has intermediate_size 24/],
    [[good[0]], /field "mlp_channel_order": has 1 layer entries, the model has 2 layers/],
    [[good[0], [...good[1].slice(1), good[1][1]]], /"mlp_channel_order"\[1\]: channel \d+ appears twice/],
    [[good[0], [...good[1].slice(1), 24]], /"mlp_channel_order"\[1\]\[23\]: 24 is not a channel index in 0…23/],
  ];
  for (const [order, message] of cases) {
    writeFileSync(path, JSON.stringify({ ...meta, mlp_channel_order: order }));
    assert.throws(() => loadWithAdapter(baseDir, adapterDir), message);
  }
});

test('permutation helpers: inverse, validation of a good order', () => {
  const p = [2, 0, 3, 1];
  assert.deepEqual(invertPermutation(p), [1, 3, 0, 2]);
  assert.deepEqual(
    invertPermutation(p).map((k) => p[k]),
    [0, 1, 2, 3],
  );
  const cfg = tinyConfig({ intermediateSize: 4, numLayers: 1 });
  assert.deepEqual(validateChannelOrder([p], cfg, 'x'), [p]);
});
