/** adapter_config.json fields that change the function PEFT computes are honoured or refused (issue 14, item 6). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, Tensor } from '../../src/tensor/index.ts';
import { addLora, loadAdapter, loraModules, peftModuleName, saveAdapter, savePeftAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { randomNormal } from '../../src/nn/modules.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const SETTINGS: LoraSettings = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] };

/** A saved adapter (rank 4, alpha 8 on q/v of both layers) whose adapter_config.json gets `edit` applied. */
function adapterWith(edit: Record<string, unknown>): string {
  const m = tinyModel();
  addLora(m, SETTINGS, 7);
  const dir = mkdtempSync(join(tmpdir(), 'lonas-peft-config-'));
  saveAdapter(dir, m, SETTINGS);
  const path = join(dir, 'adapter_config.json');
  writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ...edit }));
  return dir;
}

test('use_rslora: the scaling is alpha/sqrt(r), as in PEFT', () => {
  const model = tinyModel();
  const { settings } = loadAdapter(model, adapterWith({ use_rslora: true }));
  for (const l of loraModules(model)) assert.equal(l.scaling, 8 / Math.sqrt(4), l.name);
  assert.equal(settings.alpha / settings.rank, 8 / Math.sqrt(4));
});

test('use_rslora: false keeps alpha/r', () => {
  const model = tinyModel();
  loadAdapter(model, adapterWith({ use_rslora: false }));
  for (const l of loraModules(model)) assert.equal(l.scaling, 8 / 4, l.name);
});

test('modules_to_save (fully trained copies of modules) is refused, naming the field', () => {
  assert.throws(() => loadAdapter(tinyModel(), adapterWith({ modules_to_save: ['lm_head'] })), /"modules_to_save".*lm_head/);
  loadAdapter(tinyModel(), adapterWith({ modules_to_save: [] })); // an empty list changes nothing
});

test('layers_to_transform: only the listed layers; tensors for other layers are an error', () => {
  assert.throws(() => loadAdapter(tinyModel(), adapterWith({ layers_to_transform: [0] })), /layer 1.*"layers_to_transform"/);
  // an adapter with tensors for layer 1 only, as PEFT writes it with layers_to_transform: 1
  const rng = new Rng(5);
  const dir = mkdtempSync(join(tmpdir(), 'lonas-peft-layers-'));
  const entry = (p: 'q_proj' | 'v_proj', out: number) => ({
    name: peftModuleName(1, p),
    a: randomNormal(rng, [4, 16], 0.1),
    b: randomNormal(rng, [out, 4], 0.1),
    rank: 4,
    alpha: 8,
    dropout: 0,
  });
  savePeftAdapter(dir, [entry('q_proj', 16), entry('v_proj', 8)]);
  const path = join(dir, 'adapter_config.json');
  writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), layers_to_transform: 1, layers_pattern: 'layers' }));
  const model = tinyModel();
  loadAdapter(model, dir);
  assert.deepEqual(
    loraModules(model).map((l) => l.name),
    [peftModuleName(1, 'q_proj'), peftModuleName(1, 'v_proj')],
  );
});

test('layers_pattern other than the Llama "layers" is refused', () => {
  assert.throws(() => loadAdapter(tinyModel(), adapterWith({ layers_pattern: 'blocks', layers_to_transform: [0, 1] })), /"layers_pattern"/);
});

test('rank_pattern and alpha_pattern set per-module ranks and scalings; malformed patterns name the field', () => {
  const rng = new Rng(9);
  const dir = mkdtempSync(join(tmpdir(), 'lonas-peft-pattern-'));
  const entries = [0, 1].map((layer) => ({
    name: peftModuleName(layer, 'q_proj'),
    a: randomNormal(rng, [layer === 1 ? 2 : 4, 16], 0.1),
    b: new Tensor(new Float32Array(16 * (layer === 1 ? 2 : 4)), [16, layer === 1 ? 2 : 4]),
    rank: layer === 1 ? 2 : 4,
    alpha: layer === 1 ? 3 : 8,
    dropout: 0,
  }));
  savePeftAdapter(dir, entries);
  const model = tinyModel();
  loadAdapter(model, dir);
  assert.deepEqual(
    loraModules(model).map((l) => [l.rMax, l.scaling]),
    [
      [4, 2],
      [2, 1.5],
    ],
  );
  assert.throws(() => loadAdapter(tinyModel(), adapterWith({ rank_pattern: { 'layers.0.self_attn.q_proj': 'two' } })), /"rank_pattern/);
});

test('bias other than "none" is refused', () => {
  assert.throws(() => loadAdapter(tinyModel(), adapterWith({ bias: 'lora_only' })), /"bias"/);
});

test("the adapter's README says plainly whether PEFT computes the function lonas trained", () => {
  const readme = (mode: 'lora' | 'sparse' | 'qa') => {
    const m = tinyModel();
    addLora(m, SETTINGS, 7);
    const dir = mkdtempSync(join(tmpdir(), 'lonas-peft-readme-'));
    saveAdapter(dir, m, SETTINGS, { mode });
    return readFileSync(join(dir, 'README.md'), 'utf8');
  };
  assert.match(readme('lora'), /PEFT .*computes the same function/);
  for (const mode of ['sparse', 'qa'] as const) assert.match(readme(mode), /PEFT computes a different function/, mode);
});
