/**
 * ONNX export run in onnxruntime-node against lonas (float32): stories260K, its f16/external-data variant,
 * and a heterogeneous LoNAS sub-network (per-layer MLP widths and heads) merged on the way by
 * `lonas export --adapter --subnet`. Prompt logits agree within 1e-4; greedy continuations through the
 * exported KV cache (one token per step) are the same tokens as lonas's (for the sub-network in
 * transformers.js as well).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { exportOnnx } from '../../src/export/onnx/export.ts';
import { copyTokenizerFiles, loadLlama, loadModelDir } from '../../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { addLora, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import { resolveSearchSpace } from '../../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../../src/nas/search-space.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { f32ToF16, writeSafetensors } from '../../src/io/safetensors.ts';
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { lonas } from '../helpers/cli.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { OrtDecoder, ort, transformersJs } from '../helpers/onnx-runtime.ts';
import type { OrtTypes } from '../helpers/onnx-runtime.ts';

const PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376]; // BOS "Once upon a time, …"
const TOL = { rtol: 0, atol: 1e-4 };
const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));

const lonasLogits = (m: LlamaModel, ids: number[]) => T.noGrad(() => m.forward(Int32Array.from(ids), 1, ids.length)).toArray();
const lonasGreedy = (m: LlamaModel, n: number) => generate(m, [PROMPT], { maxNewTokens: n, strategy: { kind: 'greedy' }, eosIds: [] })[0];

/** Prompt logits, a greedy continuation (KV cache, one token per step) and the cached step's logits against lonas. */
async function assertMatchesLonas(modelFile: string, reference: LlamaModel, what: string, steps = 48): Promise<void> {
  const ort = await OrtDecoder.open(modelFile);
  assertClose(await ort.step(PROMPT), lonasLogits(reference, PROMPT), `${what}: prompt logits`, TOL);
  const expected = lonasGreedy(reference, steps);
  const got = await ort.greedy(PROMPT, steps);
  assert.deepEqual(got, expected, `${what}: greedy continuation`);
  // after greedy(), the cache holds PROMPT + got[0..steps-2]; one more step must equal a full forward's last row
  const all = [...PROMPT, ...got];
  const cached = await ort.step([got[steps - 1]]);
  assertClose(cached, lonasLogits(reference, all).slice(-ort.vocab), `${what}: logits of a cached step`, TOL);
}

test('stories260K: onnxruntime-node logits within 1e-4 of lonas, same greedy text over the KV cache', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-onnx-'));
  const r = exportOnnx({ model: STORIES_F32(), out });
  assert.equal(r.modelFile, join(out, 'onnx', 'model.onnx'));
  assert.equal(r.externalData, false);
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'])
    assert.ok(existsSync(join(out, f)), `${f} written`);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(config['transformers.js_config'], { dtype: 'fp32', use_external_data_format: false });
  const ort = await OrtDecoder.open(r.modelFile);
  const names = ort.session.inputMetadata.map((m) => m.name);
  assert.deepEqual(names.slice(0, 3), ['input_ids', 'attention_mask', 'position_ids']);
  assert.equal(names.filter((n) => /^past_key_values\.\d+\.(key|value)$/.test(n)).length, 10, 'past key and value of 5 layers');
  await assertMatchesLonas(r.modelFile, loadLlama(STORIES_F32()), 'stories260K', 64);
});

test('a left-padded batch: attention_mask hides the padding, each row equals its own unpadded run', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-onnx-batch-'));
  const r = exportOnnx({ model: STORIES_F32(), out });
  const o = ort(),
    { session } = await OrtDecoder.open(r.modelFile);
  const rows = [PROMPT, PROMPT.slice(0, 6)],
    S = PROMPT.length,
    V = 512;
  const ids: bigint[] = [],
    mask: bigint[] = [],
    pos: bigint[] = [];
  for (const row of rows) {
    const pad = S - row.length;
    for (let t = 0; t < S; t++) {
      ids.push(BigInt(t < pad ? 0 : row[t - pad]));
      mask.push(t < pad ? 0n : 1n);
      pos.push(BigInt(Math.max(0, t - pad)));
    }
  }
  const feeds: Record<string, OrtTypes.Tensor> = {};
  feeds.input_ids = new o.Tensor('int64', BigInt64Array.from(ids), [2, S]);
  feeds.attention_mask = new o.Tensor('int64', BigInt64Array.from(mask), [2, S]);
  feeds.position_ids = new o.Tensor('int64', BigInt64Array.from(pos), [2, S]);
  for (const m of session.inputMetadata)
    if (m.name.startsWith('past_'))
      feeds[m.name] = new o.Tensor('float32', new Float32Array(0), [2, Number(m.shape[1]), 0, Number(m.shape[3])]);
  const logits = (await session.run(feeds)).logits.data as Float32Array;
  const model = loadLlama(STORIES_F32());
  rows.forEach((row, b) => {
    const pad = S - row.length;
    const got = logits.slice((b * S + pad) * V, (b + 1) * S * V);
    assertClose(got, lonasLogits(model, row), `row ${b} (${pad} padding tokens)`, TOL);
  });
});

test('--dtype f16 with external data equals lonas on the f16-rounded weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-onnx-f16-'));
  // the same model with embedding and projections rounded to float16 (what --dtype f16 stores), norms float32
  const loaded = loadModelDir(STORIES_F32());
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of loaded.weights) {
    if (name.endsWith('norm.weight')) {
      tensors[name] = { dtype: 'F32', shape: [...t.shape], data: Float32Array.from(t.data) };
      continue;
    }
    const half = new Uint16Array(t.data.length);
    f32ToF16(Float32Array.from(t.data), half);
    tensors[name] = { dtype: 'F16', shape: [...t.shape], data: half };
  }
  const rounded = join(dir, 'rounded');
  mkdirSync(rounded);
  writeSafetensors(join(rounded, 'model.safetensors'), tensors);
  writeFileSync(join(rounded, 'config.json'), readFileSync(join(STORIES_F32(), 'config.json')));
  copyTokenizerFiles(STORIES_F32(), rounded);
  const r = exportOnnx({ model: STORIES_F32(), out: join(dir, 'onnx'), dtype: 'f16', externalData: 'always' });
  assert.equal(r.modelFile, join(dir, 'onnx', 'onnx', 'model_fp16.onnx'));
  assert.ok(existsSync(`${r.modelFile}_data`), 'weights in model_fp16.onnx_data');
  const config = JSON.parse(readFileSync(join(dir, 'onnx', 'config.json'), 'utf8'));
  assert.deepEqual(config['transformers.js_config'], { dtype: 'fp16', use_external_data_format: true });
  await assertMatchesLonas(r.modelFile, loadLlama(rounded), 'f16 + external data', 24);
});

test('a heterogeneous LoNAS sub-network (per-layer MLP widths and heads), merged by lonas export --adapter --subnet', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-onnx-subnet-'));
  const base = loadLlama(STORIES_F32());
  const settings = {
    rank: 4,
    alpha: 8,
    dropout: 0,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const,
  };
  addLora(base, { ...settings, targets: [...settings.targets] }, 1);
  const rng = new T.Rng(5);
  for (const l of loraModules(base)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.05)); // a trained adapter is not zero
  const spec: SearchSpaceSpec = {
    groups: [
      { kind: 'rank', share: 'all', modules: [...settings.targets], fractions: [1, 0.5] },
      { kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] },
      { kind: 'heads', share: 'layer', fractions: [1, 0.5] },
    ],
  };
  const adapter = join(dir, 'adapter');
  saveAdapter(adapter, base, { ...settings, targets: [...settings.targets] }, { searchSpace: spec });
  // layer l takes choice l mod |choices| of every per-layer group: widths and head counts differ between layers
  const space = resolveSearchSpace(spec, base.config, settings.rank);
  const subnet = Object.fromEntries(space.groups.map((g) => [g.id, g.choices[(g.layers[0] ?? 0) % g.choices.length]]));
  const subnetFile = join(dir, 'subnet.json');
  writeFileSync(subnetFile, JSON.stringify(subnet));
  const out = join(dir, 'onnx');
  lonas('export', '--format', 'onnx', '--model', STORIES_F32(), '--adapter', adapter, '--subnet', subnetFile, '--out', out);
  const layers = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).lonas_layers as {
    intermediate_size: number;
    num_key_value_heads: number;
  }[];
  assert.ok(new Set(layers.map((l) => l.intermediate_size)).size > 1, `MLP widths differ per layer: ${JSON.stringify(layers)}`);
  assert.ok(new Set(layers.map((l) => l.num_key_value_heads)).size > 1, 'key/value heads differ per layer');
  const ort = await OrtDecoder.open(join(out, 'onnx', 'model.onnx'));
  const kvHeads = ort.session.inputMetadata.filter((m) => m.name.endsWith('.key')).map((m) => m.shape[1]);
  assert.deepEqual(
    kvHeads,
    layers.map((l) => l.num_key_value_heads),
    'per-layer cache shapes in the graph',
  );
  const { model } = loadWithAdapter(STORIES_F32(), adapter, subnetFile); // the super-network at that configuration
  await assertMatchesLonas(join(out, 'onnx', 'model.onnx'), model, 'sub-network', 32);
  // transformers.js sizes each layer's empty first-step cache from the graph: the per-layer shapes work there too
  const t = await transformersJs();
  Object.assign(t.env, { allowRemoteModels: false, allowLocalModels: true, localModelPath: dir });
  const inputs = (await t.AutoTokenizer.from_pretrained('onnx'))('Once upon a time');
  const generated = await (await t.AutoModelForCausalLM.from_pretrained('onnx')).generate({
    ...inputs,
    max_new_tokens: 24,
    do_sample: false,
  });
  const prompt = inputs.input_ids.tolist()[0].map(Number);
  const reference = generate(model, [prompt], { maxNewTokens: 24, strategy: { kind: 'greedy' }, eosIds: [2] })[0];
  assert.deepEqual(generated.tolist()[0].map(Number).slice(prompt.length), reference, 'transformers.js greedy ids == lonas');
});

test('lonas export --format onnx refuses bad options with the fix', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'lonas-onnx-bad-')), 'out');
  const run = (...a: string[]) =>
    spawnSync(process.execPath, [BIN, 'export', '--format', 'onnx', '--model', STORIES_F32(), '--out', out, ...a], { encoding: 'utf8' });
  const dtype = run('--dtype', 'bf16');
  assert.equal(dtype.status, 1);
  assert.match(dtype.stderr, /--dtype bf16: --format onnx stores float weights as f32 or f16/);
  const subnet = run('--subnet', 'minimal');
  assert.equal(subnet.status, 1);
  assert.match(subnet.stderr, /--subnet needs --adapter/);
  assert.equal(existsSync(out), false, 'nothing written');
});
