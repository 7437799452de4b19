/** LoRA and elastic sub-networks: the invariants that make weight sharing correct. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { addLora, loadAdapter, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { LlamaModel } from '../../src/models/llama/model.ts';
import type { LlamaConfig } from '../../src/models/llama/config.ts';
import { PRESETS, resolveSearchSpace, loadSearchSpaceSpec } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet, sampleSubnet, validateSubnet } from '../../src/nas/subnet.ts';
import { causalLmLoss } from '../../src/models/llama/loss.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const ALL: LoraSettings = {
  rank: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};
const ids = Int32Array.from([1, 5, 9, 3, 22, 17, 8, 2, 30, 11, 4, 6]);
const logits = (m: LlamaModel) => T.noGrad(() => m.forward(ids, 2, 6)).toArray();

/** Gives every lora_B random values so adapters matter. */
function perturb(m: LlamaModel, seed = 3): void {
  const rng = new T.Rng(seed);
  for (const l of loraModules(m)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
}

test('an untrained adapter leaves the logits unchanged (exactly)', () => {
  const base = logits(tinyModel());
  const m = tinyModel();
  addLora(m, ALL, 7);
  assert.deepEqual(logits(m), base);
});

test('only adapter weights get gradients; the frozen base gets none', () => {
  const m = tinyModel();
  const loras = addLora(m, ALL, 7);
  perturb(m);
  T.backward(causalLmLoss(m.forward(ids, 2, 6), ids));
  for (const l of loras) {
    assert.ok(l.loraA.grad && l.loraB.grad, `${l.name} has gradients`);
    assert.ok(l.loraA.grad.toArray().some((g) => g !== 0));
  }
  for (const p of m.namedParameters().values()) assert.equal(p.grad, null, `${p.name} is frozen`);
});

test("active rank r' equals a plain rank-r' LoRA built from A[:r'] and B[:, :r'] (same scaling)", () => {
  const m = tinyModel();
  addLora(m, ALL, 7);
  perturb(m);
  for (const l of loraModules(m)) l.activeRank = 2;
  const elastic = logits(m);
  const plain = tinyModel();
  addLora(plain, { ...ALL, rank: 2, alpha: 4 }, 7); // alpha/r = 8/4 = 4/2
  loraModules(plain).forEach((p, i) => {
    const src = loraModules(m)[i];
    const inF = src.loraA.shape[1];
    p.loraA.data.set(src.loraA.data.subarray(0, 2 * inF));
    for (let r = 0; r < p.loraB.shape[0]; r++) for (let k = 0; k < 2; k++) p.loraB.data[r * 2 + k] = src.loraB.data[r * 4 + k];
  });
  assertClose(elastic, logits(plain), 'elastic rank vs plain LoRA', { rtol: 1e-5, atol: 1e-6 });
});

/** A model whose weights (and adapters) are sliced by hand to MLP widths / query heads per layer. */
function handSliced(src: LlamaModel, widths: number[], heads: number[]): LlamaModel {
  const c = src.config,
    D = c.headDim;
  const config: LlamaConfig = {
    ...c,
    layers: c.layers.map((l, i) => ({
      intermediateSize: widths[i],
      numHeads: heads[i],
      numKvHeads: heads[i] / (l.numHeads / l.numKvHeads),
    })),
  };
  const sliceRows = (t: T.Tensor, n: number) => T.tensor(t.contiguousData().slice(0, n * t.shape[1]), [n, t.shape[1]]);
  const sliceCols = (t: T.Tensor, n: number) => T.tensor(T.narrow(t, 1, 0, n).contiguousData(), [t.shape[0], n]);
  const weights = new Map<string, T.Tensor>();
  for (const [name, t] of src.namedParameters()) weights.set(name, t);
  src.layers.forEach((_, i) => {
    const w = (p: string) => src.namedParameters().get(`model.layers.${i}.${p}.weight`)!;
    const kv = config.layers[i].numKvHeads * D;
    weights.set(`model.layers.${i}.self_attn.q_proj.weight`, sliceRows(w('self_attn.q_proj'), heads[i] * D));
    weights.set(`model.layers.${i}.self_attn.k_proj.weight`, sliceRows(w('self_attn.k_proj'), kv));
    weights.set(`model.layers.${i}.self_attn.v_proj.weight`, sliceRows(w('self_attn.v_proj'), kv));
    weights.set(`model.layers.${i}.self_attn.o_proj.weight`, sliceCols(w('self_attn.o_proj'), heads[i] * D));
    weights.set(`model.layers.${i}.mlp.gate_proj.weight`, sliceRows(w('mlp.gate_proj'), widths[i]));
    weights.set(`model.layers.${i}.mlp.up_proj.weight`, sliceRows(w('mlp.up_proj'), widths[i]));
    weights.set(`model.layers.${i}.mlp.down_proj.weight`, sliceCols(w('mlp.down_proj'), widths[i]));
  });
  const out = new LlamaModel(config, weights);
  addLora(out, ALL, 7);
  loraModules(out).forEach((dst, j) => {
    const s = loraModules(src)[j];
    dst.loraA.data.set(T.narrow(s.loraA, 1, 0, dst.loraA.shape[1]).contiguousData());
    dst.loraB.data.set(s.loraB.data.subarray(0, dst.loraB.size));
  });
  return out;
}

test('elastic MLP widths and heads equal a model sliced by hand (lonas preset + heads)', () => {
  const m = tinyModel();
  addLora(m, ALL, 7);
  perturb(m);
  const space = resolveSearchSpace(
    { groups: [...PRESETS.lonas.groups, { kind: 'heads', share: 'layer', fractions: [1, 0.5] }] },
    m.config,
    4,
  );
  const cfg = namedSubnet(space, 'minimal');
  assert.deepEqual(
    cfg,
    {
      'layers.0.rank.q_proj+k_proj+v_proj': 4,
      'layers.0.mlp_width': 12,
      'layers.0.rank.gate_proj+up_proj': 4,
      'layers.0.heads': 2,
      'layers.1.rank.q_proj+k_proj+v_proj': 4,
      'layers.1.mlp_width': 12,
      'layers.1.rank.gate_proj+up_proj': 4,
      'layers.1.heads': 2,
    },
    'rank 4 × 0.875 rounds to 4 here',
  );
  const mixed = { ...cfg, 'layers.0.mlp_width': 18, 'layers.1.heads': 4 };
  applySubnet(m, space, validateSubnet(space, mixed, 'test'));
  const sliced = handSliced(m, [18, 12], [2, 4]);
  assertClose(logits(m), logits(sliced), 'elastic vs hand-sliced', { rtol: 1e-5, atol: 1e-6 });
  applySubnet(m, space, namedSubnet(space, 'maximal'));
  assertClose(logits(m), logits(handSliced(m, [24, 24], [4, 4])), 'maximal = full model', { rtol: 1e-5, atol: 1e-6 });
});

test('search spaces: presets scale to the model, named configs, sampling, validation errors', () => {
  const c = tinyConfig({ intermediateSize: 172, numLayers: 1 });
  const lonas = resolveSearchSpace(PRESETS.lonas, c, 32);
  assert.deepEqual(
    lonas.groups.map((g) => [g.id, g.choices]),
    [
      ['layers.0.rank.q_proj+k_proj+v_proj', [32, 28]],
      ['layers.0.mlp_width', [172, 151, 129, 108, 86]],
      ['layers.0.rank.gate_proj+up_proj', [32, 28]],
    ],
  );
  const nls = resolveSearchSpace(PRESETS.nls, c, 32);
  assert.deepEqual(
    nls.groups.map((g) => g.choices),
    [
      [32, 24, 16],
      [32, 24, 16],
      [32, 24, 16],
    ],
  );
  assert.deepEqual(namedSubnet(nls, 'heuristic'), {
    'layers.0.rank.q_proj+k_proj+v_proj': 24,
    'layers.0.rank.up_proj': 24,
    'layers.0.rank.down_proj': 24,
  });
  const draws = new Set(Array.from({ length: 200 }, (_, i) => JSON.stringify(sampleSubnet(nls, new T.Rng(i)))));
  assert.ok(draws.size > 10, 'sampling covers the space');
  const shared = resolveSearchSpace({ groups: [{ kind: 'rank', modules: ['q_proj'], share: 'all', choices: [8, 4] }] }, tinyConfig(), 8);
  assert.deepEqual(
    shared.groups.map((g) => [g.id, g.layers]),
    [['all.rank.q_proj', [0, 1]]],
  );
  const dir = mkdtempSync(join(tmpdir(), 'lonas-space-'));
  const bad = (json: unknown, re: RegExp) => {
    const f = join(dir, 'space.json');
    writeFileSync(f, JSON.stringify(json));
    assert.throws(() => loadSearchSpaceSpec(f), re);
  };
  bad({ groups: [{ kind: 'rank', fractions: [1] }] }, /field "groups.0.modules": rank groups need "modules"/);
  bad({ groups: [{ kind: 'width', fractions: [1] }] }, /field "groups.0.kind"/);
  bad({ groups: [{ kind: 'mlp_width', fractions: [1], choices: [3] }] }, /exactly one of "fractions" or "choices"/);
  assert.throws(() => loadSearchSpaceSpec('nope'), /not a preset \(lonas, nls, none\)/);
  assert.throws(
    () => validateSubnet(nls, { 'layers.0.rank.up_proj': 24 }, 'cfg.json'),
    /cfg.json: missing group "layers.0.rank.q_proj\+k_proj\+v_proj"/,
  );
  assert.throws(
    () => validateSubnet(nls, { ...namedSubnet(nls, 'maximal'), 'layers.0.rank.up_proj': 20 }, 'cfg.json'),
    /is not one of its choices 32, 24, 16/,
  );
  assert.throws(
    () => resolveSearchSpace({ groups: [{ kind: 'heads', share: 'layer', choices: [3] }] }, tinyConfig(), 4),
    /not a whole number of GQA groups/,
  );
});

test('PEFT save/load round trip reproduces the logits; bad adapter dirs are clear errors', () => {
  const m = tinyModel();
  addLora(m, ALL, 7);
  perturb(m);
  const dir = mkdtempSync(join(tmpdir(), 'lonas-adapter-'));
  saveAdapter(dir, m, ALL, { searchSpace: PRESETS.nls });
  const again = tinyModel();
  const { settings, searchSpace } = loadAdapter(again, dir);
  assert.deepEqual(settings, ALL);
  assert.deepEqual(searchSpace, PRESETS.nls);
  assert.deepEqual(logits(again), logits(m));
  assert.throws(() => loadAdapter(tinyModel(), join(dir, 'missing')), /no adapter_config.json found/);
});
