/**
 * Model directories on the real stories260K checkpoint: load (F32, BF16), save → load round trips (F32,
 * BF16, sharded, per-layer sizes), atomic replacement, and errors that name the file. Assets are only
 * read in place; anything modified is a copy under os.tmpdir().
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama, loadModelDir, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { copyTokenizerFiles } from '../../src/io/hf-dir.ts';
import { LlamaModel } from '../../src/models/llama/model.ts';
import type { LlamaConfig } from '../../src/models/llama/config.ts';
import { Tensor, noGrad } from '../../src/tensor/index.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import { STORIES_BF16, STORIES_F32 } from '../helpers/assets.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lonas-ckpt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => join(tmp, `${name}-${n++}`);

/** A writable copy of an asset model directory (files rewritten, so not read-only like the assets). */
function copyDir(src: string): string {
  const dst = fresh('copy');
  mkdirSync(dst);
  for (const f of readdirSync(src)) writeFileSync(join(dst, f), readFileSync(join(src, f)));
  return dst;
}

/** Rounds float32 → bf16 → float32, round-to-nearest-even on the dropped 16 bits (NaN-free input). */
function roundBf16(x: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < bits.length; i++) {
    const lo = bits[i] & 0xffff;
    let hi = bits[i] >>> 16;
    if (lo > 0x8000 || (lo === 0x8000 && (hi & 1) === 1)) hi += 1;
    bits[i] = (hi << 16) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

/** same names, shapes and float32 bit patterns */
function assertSameWeights(actual: Map<string, Tensor>, expected: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: tensor names`);
  const bits = (t: Tensor) => Array.from(new Uint32Array(Float32Array.from(t.contiguousData()).buffer));
  for (const [name, e] of expected) {
    const a = actual.get(name)!;
    assert.deepEqual(a.shape, e.shape, `${what}: ${name} shape`);
    assert.deepEqual(bits(a), bits(e), `${what}: ${name} values`);
  }
}

const f32 = loadModelDir(STORIES_F32());

test('loads stories260K (F32): config and every tensor as float32', () => {
  const c = f32.config;
  assert.equal(f32.dtype, 'F32');
  assert.deepEqual(
    [c.hiddenSize, c.layers.length, c.headDim, c.vocabSize, c.tieWordEmbeddings, c.attentionBias],
    [64, 5, 8, 512, true, false],
  );
  assert.ok(c.layers.every((l) => l.numHeads === 8 && l.numKvHeads === 4 && l.intermediateSize === 172));
  assert.deepEqual([c.rmsNormEps, c.ropeTheta, c.ropeScaling, c.maxPositions], [1e-5, 10000, null, 512]);
  assert.equal(f32.weights.size, 1 + 5 * 9 + 1, 'embed, 9 per layer, final norm; no lm_head (tied)');
  assert.deepEqual(f32.weights.get('model.layers.0.self_attn.k_proj.weight')!.shape, [32, 64]);
  assert.deepEqual(f32.unused, []);
  assert.equal(f32.hfConfig.bos_token_id, 1);
  const model = loadLlama(STORIES_F32());
  assert.equal(model.namedParameters().size, 47);
});

test('BF16 checkpoint loads as the F32 weights rounded to bf16 (nearest even)', () => {
  const bf16 = loadModelDir(STORIES_BF16());
  assert.equal(bf16.dtype, 'BF16');
  assert.deepEqual(bf16.config, f32.config);
  for (const [name, t] of f32.weights) {
    assert.deepEqual(bf16.weights.get(name)!.toArray(), Array.from(roundBf16(t.data as Float32Array)), name);
  }
});

/** Greedy decoding by full recomputation (no KV cache), decoded with tokenizer.json's vocab (▁ = space, <0xNN> = byte). */
function greedyStory(dir: string, steps: number): string {
  const model = loadLlama(dir);
  const vocab = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
  const pieces: string[] = [];
  for (const [piece, id] of Object.entries(vocab)) pieces[id] = piece;
  const ids = [1]; // BOS
  const V = model.config.vocabSize;
  for (let s = 0; s < steps; s++) {
    const logits = noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length)).contiguousData(); // (1, T, V)
    let best = 0;
    for (let v = 1, o = (ids.length - 1) * V; v < V; v++) if (logits[o + v] > logits[o + best]) best = v;
    ids.push(best);
  }
  const bytes = ids.slice(1).flatMap((id) => {
    const hex = /^<0x([0-9A-F]{2})>$/.exec(pieces[id]);
    return hex ? [parseInt(hex[1], 16)] : [...Buffer.from(pieces[id].replace(/▁/g, ' '))];
  });
  return Buffer.from(bytes).toString('utf8').replace(/^ /, ''); // the SentencePiece prefix space
}

test('the loaded weights reproduce the reference greedy story byte for byte (F32 and BF16)', () => {
  for (const [dir, file] of [
    [STORIES_F32(), 'f32'],
    [STORIES_BF16(), 'bf16'],
  ]) {
    const expected = readFileSync(join(dir, '..', `expected_greedy_256_from_bos.${file}.txt`), 'utf8');
    // the reference files end with the newline the reference program prints after generating
    assert.equal(`${greedyStory(dir, 256)}\n`, expected, file);
  }
});

test('save → load: F32 is bit-exact, unknown config fields kept, no temporary files left', () => {
  const dir = fresh('f32');
  saveModelDir(dir, loadLlama(STORIES_F32()), { hfConfig: f32.hfConfig });
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.startsWith('.')),
    [],
    'no temp directory left behind',
  );
  const back = loadModelDir(dir);
  assertSameWeights(back.weights, f32.weights, 'F32 round trip');
  assert.deepEqual(back.config, f32.config);
  assert.equal(back.hfConfig.bos_token_id, 1);
  assert.equal(back.hfConfig.torch_dtype, 'float32');
  const text = readFileSync(join(dir, 'config.json'), 'utf8');
  assert.match(
    text,
    /^{\n {2}"architectures": \[\n {4}"LlamaForCausalLM"\n {2}\],\n {2}"attention_bias": false,/,
    'sorted keys, 2-space indent',
  );
  assert.match(text, /"rope_theta": 10000\.0,/, 'float fields stay floats for transformers');
});

test('save as BF16 rounds exactly as the reference BF16 checkpoint', () => {
  const dir = fresh('bf16');
  saveModelDir(dir, loadLlama(STORIES_F32()), { hfConfig: f32.hfConfig, dtype: 'BF16' });
  const back = loadModelDir(dir);
  assert.equal(back.dtype, 'BF16');
  assert.equal(back.hfConfig.torch_dtype, 'bfloat16');
  assertSameWeights(back.weights, loadModelDir(STORIES_BF16()).weights, 'BF16 save');
});

test('sharded save writes shards plus an index, and loads back equal', () => {
  const dir = fresh('sharded');
  saveModelDir(dir, loadLlama(STORIES_F32()), { hfConfig: f32.hfConfig, shardBytes: 200_000 });
  const files = readdirSync(dir).sort();
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 5, `several shards: ${files.join(', ')}`);
  assert.deepEqual(files, ['config.json', ...shards, 'model.safetensors.index.json'].sort());
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(Object.keys(index.weight_map).length, 47);
  assert.deepEqual(new Set(Object.values(index.weight_map)), new Set(shards));
  assert.equal(
    index.metadata.total_size,
    [...f32.weights.values()].reduce((a, t) => a + t.size * 4, 0),
  );
  assertSameWeights(loadModelDir(dir).weights, f32.weights, 'sharded round trip');

  unlinkSync(join(dir, shards[1]));
  assert.throws(
    () => loadModelDir(dir),
    (e: Error) =>
      e.message.startsWith(join(dir, 'model.safetensors.index.json')) &&
      e.message.includes(`points to shard "${shards[1]}", which does not exist`),
  );
});

/** stories260K cut down to different sizes per layer: the first rows/columns of each projection. */
function subNetwork(): { config: LlamaConfig; weights: Map<string, Tensor> } {
  const sizes = [
    [172, 8, 4],
    [100, 4, 2],
    [64, 8, 2],
    [172, 2, 1],
    [32, 8, 4],
  ];
  const config: LlamaConfig = { ...f32.config, layers: sizes.map(([i, h, kv]) => ({ intermediateSize: i, numHeads: h, numKvHeads: kv })) };
  const slice = (t: Tensor, rows: number, cols: number) => {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) out.set(t.data.subarray(r * t.shape[1], r * t.shape[1] + cols), r * cols);
    return new Tensor(out, [rows, cols]);
  };
  const weights = new Map(f32.weights);
  config.layers.forEach((l, i) => {
    const w = (p: string) => f32.weights.get(`model.layers.${i}.${p}.weight`)!;
    const set = (p: string, t: Tensor) => weights.set(`model.layers.${i}.${p}.weight`, t);
    const D = config.headDim,
      C = config.hiddenSize;
    set('self_attn.q_proj', slice(w('self_attn.q_proj'), l.numHeads * D, C));
    set('self_attn.k_proj', slice(w('self_attn.k_proj'), l.numKvHeads * D, C));
    set('self_attn.v_proj', slice(w('self_attn.v_proj'), l.numKvHeads * D, C));
    set('self_attn.o_proj', slice(w('self_attn.o_proj'), C, l.numHeads * D));
    set('mlp.gate_proj', slice(w('mlp.gate_proj'), l.intermediateSize, C));
    set('mlp.up_proj', slice(w('mlp.up_proj'), l.intermediateSize, C));
    set('mlp.down_proj', slice(w('mlp.down_proj'), C, l.intermediateSize));
  });
  return { config, weights };
}

test('per-layer sizes round trip through lonas_layers', () => {
  const { config, weights } = subNetwork();
  const model = new LlamaModel(config, weights);
  const dir = fresh('sub');
  saveModelDir(dir, model, { hfConfig: f32.hfConfig });
  const hf = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual([hf.intermediate_size, hf.num_attention_heads, hf.num_key_value_heads, hf.head_dim], [172, 8, 4, 8]);
  assert.deepEqual(hf.lonas_layers[1], { intermediate_size: 100, num_attention_heads: 4, num_key_value_heads: 2 });
  const back = loadLlama(dir);
  assert.deepEqual(back.config, config);
  assertSameWeights(back.namedParameters(), model.namedParameters(), 'sub-network');
  const ids = Int32Array.from([1, 403, 407, 261, 378]);
  assert.deepEqual(noGrad(() => back.forward(ids, 1, 5)).toArray(), noGrad(() => model.forward(ids, 1, 5)).toArray());
});

test('saving over a model needs overwrite; replacing keeps other files and drops stale shards', () => {
  const dir = fresh('replace');
  const model = loadLlama(STORIES_F32());
  saveModelDir(dir, model, { shardBytes: 200_000 });
  assert.deepEqual(copyTokenizerFiles(STORIES_F32(), dir), [
    'tokenizer.json',
    'tokenizer_config.json',
    'special_tokens_map.json',
    'generation_config.json',
  ]);
  assert.throws(() => saveModelDir(dir, model), /already holds a model .*pass overwrite: true/);
  saveModelDir(dir, model, { overwrite: true, dtype: 'BF16' });
  assert.deepEqual(readdirSync(dir).sort(), [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  assert.equal(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), readFileSync(join(STORIES_F32(), 'tokenizer.json'), 'utf8'));
  assert.equal(loadModelDir(dir).dtype, 'BF16');
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.startsWith('.')),
    [],
  );
});

/** the loader's error names `file` and matches `pattern` */
function loadFails(dir: string, file: string, pattern: RegExp): void {
  assert.throws(
    () => loadLlama(dir),
    (e: Error) => {
      assert.ok(e.message.startsWith(file), `error should start with ${file}: ${e.message}`);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

function withConfig(edit: (c: Record<string, unknown>) => void): string {
  const dir = copyDir(STORIES_F32());
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  return dir;
}

test('errors name the missing or broken file and the problem', () => {
  const nowhere = join(tmp, 'does-not-exist');
  loadFails(nowhere, nowhere, /model directory does not exist/);

  const noConfig = copyDir(STORIES_F32());
  unlinkSync(join(noConfig, 'config.json'));
  loadFails(noConfig, join(noConfig, 'config.json'), /: missing \(a model directory needs config.json/);

  const badJson = copyDir(STORIES_F32());
  writeFileSync(join(badJson, 'config.json'), '{"model_type": "llama",');
  loadFails(badJson, join(badJson, 'config.json'), /not valid JSON/);

  let d = withConfig((c) => {
    c.model_type = 'gpt2';
    delete c.architectures;
  });
  loadFails(d, join(d, 'config.json'), /field "model_type" = "gpt2" is not supported/);
  d = withConfig((c) => {
    c.rope_scaling = { rope_type: 'yarn', factor: 4 };
  });
  loadFails(d, join(d, 'config.json'), /field "rope_scaling.rope_type" = "yarn" is not supported \(supported: linear, llama3/);
  d = withConfig((c) => {
    c.mlp_bias = true;
  });
  loadFails(d, join(d, 'config.json'), /field "mlp_bias" = true is not supported/);
  d = withConfig((c) => {
    c.tie_word_embeddings = false;
  });
  loadFails(d, d, /missing tensor 'lm_head.weight' \(the weights do not match/);

  const truncated = copyDir(STORIES_F32());
  truncateSync(join(truncated, 'model.safetensors'), 600_000);
  loadFails(truncated, join(truncated, 'model.safetensors'), /truncated/);

  const noWeights = copyDir(STORIES_F32());
  unlinkSync(join(noWeights, 'model.safetensors'));
  loadFails(noWeights, noWeights, /no weights found: expected model.safetensors or model.safetensors.index.json/);
});

/** a model directory with stories260K's config.json and these tensors */
function writeDir(name: string, tensors: Map<string, Tensor>): string {
  const dir = fresh(name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(f32.hfConfig));
  const out: Record<string, TensorToWrite> = {};
  for (const [n, t] of tensors) out[n] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  writeSafetensors(join(dir, 'model.safetensors'), out);
  return dir;
}

test('a tensor whose shape disagrees with config.json is named, with the file it came from', () => {
  const weights = new Map(f32.weights);
  weights.set('model.layers.2.self_attn.q_proj.weight', new Tensor(new Float32Array(32 * 64), [32, 64]));
  const dir = writeDir('wrong-shape', weights);
  loadFails(
    dir,
    join(dir, 'model.safetensors'),
    /'model.layers.2.self_attn.q_proj.weight' has shape \[32, 64\], the config expects \[64, 64\] \(the weights do not match .*config.json\)/,
  );
});

test('extra tensors in the file are ignored and listed', () => {
  const weights = new Map(f32.weights);
  weights.set('model.layers.0.self_attn.rotary_emb.inv_freq', new Tensor(new Float32Array(4), [4]));
  weights.set('lm_head.weight', f32.weights.get('model.embed_tokens.weight')!); // some exporters store the tied head too
  const loaded = loadModelDir(writeDir('extra', weights));
  assert.deepEqual(loaded.unused.sort(), ['lm_head.weight', 'model.layers.0.self_attn.rotary_emb.inv_freq']);
  assertSameWeights(loaded.weights, f32.weights, 'with extras');
});
