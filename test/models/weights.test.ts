/** The Llama weight table against a real checkpoint, a Qwen2-style config and llama.cpp's GGUF names. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { parseHfConfig } from '../../src/models/llama/hf-config.ts';
import { llamaWeightTable } from '../../src/models/llama/weights.ts';
import type { LlamaConfig } from '../../src/models/llama/config.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

/** Qwen2-like: q/k/v biases, untied head, and a second layer extracted smaller (own MLP width and heads). */
const qwenLike = (): LlamaConfig => ({
  ...tinyConfig({ attentionBias: true, tieWordEmbeddings: false }),
  layers: [
    { intermediateSize: 24, numHeads: 4, numKvHeads: 2 },
    { intermediateSize: 10, numHeads: 2, numKvHeads: 1 },
  ],
});

test('stories260K: the table lists exactly the tensors of the checkpoint, with their shapes', () => {
  const dir = STORIES_F32();
  const config = parseHfConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
  const file = new SafetensorsFile(join(dir, 'model.safetensors'));
  try {
    const table = llamaWeightTable(config);
    assert.equal(table.lmHead, null, 'stories260K ties its head: no lm_head.weight');
    assert.deepEqual(table.all.map((t) => t.name).sort(), [...file.entries.keys()].sort());
    for (const t of table.all) assert.deepEqual(t.shape, [...file.entry(t.name).shape], t.name);
  } finally {
    file.close();
  }
});

test("shapes follow each layer's own sizes; biases only on q/k/v with attention_bias", () => {
  const table = llamaWeightTable(qwenLike()); // C 16, D 4, V 40
  const l1 = table.layers[1];
  assert.deepEqual(l1.proj.q_proj.weight.shape, [8, 16]);
  assert.deepEqual(l1.proj.k_proj.weight.shape, [4, 16]);
  assert.deepEqual(l1.proj.v_proj.bias?.shape, [4]);
  assert.deepEqual(l1.proj.o_proj.weight.shape, [16, 8]);
  assert.deepEqual(l1.proj.gate_proj.weight.shape, [10, 16]);
  assert.deepEqual(l1.proj.down_proj.weight.shape, [16, 10]);
  assert.deepEqual(table.layers[0].proj.up_proj.weight.shape, [24, 16]);
  assert.deepEqual(
    table.all.filter((t) => t.name.endsWith('.bias')).map((t) => t.name),
    [0, 1].flatMap((i) => ['q_proj', 'k_proj', 'v_proj'].map((p) => `model.layers.${i}.self_attn.${p}.bias`)),
  );
  assert.deepEqual(table.lmHead?.shape, [40, 16]);
  assert.equal(
    llamaWeightTable(tinyConfig()).all.some((t) => t.name.endsWith('.bias')),
    false,
  );
});

test("GGUF names are those of llama.cpp's HF converter", () => {
  const table = llamaWeightTable(qwenLike());
  const gguf = new Map(table.all.map((t) => [t.name, t.gguf]));
  const expected: [string, string][] = [
    ['model.embed_tokens.weight', 'token_embd.weight'],
    ['model.layers.1.input_layernorm.weight', 'blk.1.attn_norm.weight'],
    ['model.layers.1.self_attn.q_proj.weight', 'blk.1.attn_q.weight'],
    ['model.layers.1.self_attn.q_proj.bias', 'blk.1.attn_q.bias'],
    ['model.layers.1.self_attn.k_proj.weight', 'blk.1.attn_k.weight'],
    ['model.layers.1.self_attn.k_proj.bias', 'blk.1.attn_k.bias'],
    ['model.layers.1.self_attn.v_proj.weight', 'blk.1.attn_v.weight'],
    ['model.layers.1.self_attn.v_proj.bias', 'blk.1.attn_v.bias'],
    ['model.layers.1.self_attn.o_proj.weight', 'blk.1.attn_output.weight'],
    ['model.layers.1.post_attention_layernorm.weight', 'blk.1.ffn_norm.weight'],
    ['model.layers.1.mlp.gate_proj.weight', 'blk.1.ffn_gate.weight'],
    ['model.layers.1.mlp.up_proj.weight', 'blk.1.ffn_up.weight'],
    ['model.layers.1.mlp.down_proj.weight', 'blk.1.ffn_down.weight'],
    ['model.norm.weight', 'output_norm.weight'],
    ['lm_head.weight', 'output.weight'],
  ];
  for (const [hf, name] of expected) assert.equal(gguf.get(hf), name, hf);
  assert.equal(new Set(gguf.values()).size, table.all.length, 'GGUF names are unique');
});

test('bf16-capable: the 2-D weights; quantizable: the projections and the LM head', () => {
  const table = llamaWeightTable(qwenLike());
  for (const t of table.all) {
    assert.equal(t.bf16Capable, t.shape.length === 2, t.name);
    assert.equal(t.quantizable, (t.proj !== null && t.name.endsWith('.weight')) || t.name === 'lm_head.weight', t.name);
  }
  assert.equal(table.embed.quantizable, false);
});

test('a model built from the table holds every tensor of the table under its name, and only those', () => {
  const config = qwenLike();
  const params = tinyModel(3, config).namedParameters();
  const table = llamaWeightTable(config);
  assert.deepEqual([...params.keys()].sort(), table.all.map((t) => t.name).sort());
  for (const t of table.all) assert.deepEqual(params.get(t.name)!.shape, t.shape, t.name);
});
