/** config.json ⇄ LlamaConfig: transformers' defaults per family, refusals with actionable messages, inverse. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHfConfig, toHfConfig } from '../../src/models/llama/hf-config.ts';
import type { LlamaConfig } from '../../src/models/llama/config.ts';

const FILE = '/m/config.json';
const base = { hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, num_attention_heads: 8, vocab_size: 512 };
const llama = (extra: object = {}) => ({ model_type: 'llama', ...base, ...extra });

function parse(json: unknown): { config: LlamaConfig; warnings: string[] } {
  const warnings: string[] = [];
  return { config: parseHfConfig(json, FILE, { warn: (m) => warnings.push(m) }), warnings };
}

/** the error names the file, and every line matches one of the patterns (in order) */
function fails(json: unknown, ...patterns: RegExp[]): void {
  assert.throws(
    () => parse(json),
    (e: Error) => {
      const lines = e.message.split('\n');
      assert.equal(lines.length, patterns.length, e.message);
      lines.forEach((l, i) => {
        assert.ok(l.startsWith(`${FILE}: `), l);
        assert.match(l, patterns[i]);
      });
      return true;
    },
  );
}

test('llama defaults follow transformers LlamaConfig', () => {
  const { config, warnings } = parse(llama());
  assert.deepEqual(config, {
    vocabSize: 512,
    hiddenSize: 64,
    headDim: 8,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 2048,
    tieWordEmbeddings: false,
    attentionBias: false,
    quantization: null,
    layers: [
      { intermediateSize: 172, numHeads: 8, numKvHeads: 8 },
      { intermediateSize: 172, numHeads: 8, numKvHeads: 8 },
    ],
  });
  assert.deepEqual(warnings, []);
  assert.equal(parse(llama({ head_dim: 16, num_key_value_heads: 2 })).config.headDim, 16);
  assert.equal(parse({ architectures: ['LlamaForCausalLM'], ...base }).config.vocabSize, 512, 'architectures alone is enough');
});

test('mistral and qwen2 defaults; sliding windows are warned about, not silently ignored', () => {
  const m = parse({ model_type: 'mistral', ...base });
  assert.equal(m.config.layers[0].numKvHeads, 8);
  assert.equal(m.config.maxPositions, 131072);
  assert.equal(m.warnings.length, 1, 'transformers defaults Mistral to a 4096-token window');
  assert.match(m.warnings[0], /WARNING \/m\/config.json: field "sliding_window" = 4096: .* longer than 4096 tokens/);
  assert.deepEqual(parse({ model_type: 'mistral', ...base, sliding_window: null }).warnings, []);
  assert.deepEqual(parse({ model_type: 'mistral', ...base, sliding_window: 4096, max_position_embeddings: 4096 }).warnings, []);

  const q = parse({ model_type: 'qwen2', ...base, num_attention_heads: 32, head_dim: 8, sliding_window: 128 });
  assert.equal(q.config.attentionBias, true, 'Qwen2 always has q/k/v biases');
  assert.equal(q.config.layers[0].numKvHeads, 32);
  assert.equal(q.config.maxPositions, 32768);
  assert.deepEqual(q.warnings, [], 'use_sliding_window defaults to false');
  const qs = { model_type: 'qwen2', ...base, use_sliding_window: true, sliding_window: 128, num_key_value_heads: 2 };
  assert.deepEqual(parse(qs).warnings, [], 'layers below max_window_layers (28) never slide');
  assert.equal(parse({ ...qs, max_window_layers: 1 }).warnings.length, 1);
  assert.equal(parse({ ...qs, layer_types: ['full_attention', 'sliding_attention'] }).warnings.length, 1);
});

test('RoPE: linear (legacy "type" key), llama3, default, and transformers 5 rope_parameters', () => {
  assert.deepEqual(parse(llama({ rope_scaling: { type: 'linear', factor: 2 } })).config.ropeScaling, { type: 'linear', factor: 2 });
  const l3 = { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  assert.deepEqual(parse(llama({ rope_scaling: l3, rope_theta: 500000 })).config.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 8192,
  });
  assert.equal(parse(llama({ rope_scaling: { rope_type: 'default' } })).config.ropeScaling, null);
  const v5 = parse(llama({ rope_parameters: { ...l3, rope_theta: 500000 } })).config;
  assert.equal(v5.ropeTheta, 500000);
  assert.equal(v5.ropeScaling?.type, 'llama3');
});

test('unsupported models and features are refused naming the field, the value and what works', () => {
  fails(
    llama({ rope_scaling: { rope_type: 'yarn', factor: 4 } }),
    /^\/m\/config.json: field "rope_scaling.rope_type" = "yarn" is not supported \(supported: linear, llama3/,
  );
  fails(llama({ rope_scaling: { type: 'dynamic', factor: 4 } }), /field "rope_scaling.type" = "dynamic" is not supported/);
  fails(
    llama({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }),
    /field "rope_scaling.original_max_position_embeddings" is missing \(llama3 RoPE scaling needs it\)/,
  );
  fails(
    llama({
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 4, original_max_position_embeddings: 64 },
    }),
    /field "rope_scaling.high_freq_factor" = 4 must be greater than low_freq_factor/,
  );
  fails(
    { model_type: 'gpt2', n_embd: 768 },
    /field "model_type" = "gpt2" is not supported \(lonas runs Llama-family decoders; supported: model_type llama, mistral, qwen2; architectures LlamaForCausalLM/,
  );
  fails({ ...base }, /field "model_type" is missing and so is "architectures"/);
  fails(
    llama({ architectures: ['LlamaForSequenceClassification'] }),
    /field "architectures" = \["LlamaForSequenceClassification"\] is not supported/,
  );
  fails(llama({ architectures: ['Qwen2ForCausalLM'] }), /does not match model_type "llama"/);
  fails(llama({ mlp_bias: true }), /field "mlp_bias" = true is not supported \(lonas MLP projections have no bias/);
  fails(llama({ attention_bias: true }), /field "attention_bias" = true is not supported for llama \(it adds an o_proj bias/);
  fails(llama({ hidden_act: 'gelu' }), /field "hidden_act" = "gelu" is not supported \(supported: silu/);
  fails(
    llama({ quantization_config: { quant_method: 'awq', bits: 4 } }),
    /field "quantization_config.quant_method" = .*"awq" is not supported \(lonas loads GPTQ checkpoints/,
  );
  fails(llama({ quantization_config: { quant_method: 'gptq', bits: 5 } }), /field "quantization_config.bits" = 5 must be 2, 3, 4 or 8/);
});

test('type and size errors are all reported, one line each', () => {
  fails(
    llama({ vocab_size: '512', hidden_size: 64.5, num_hidden_layers: 0 }),
    /field "vocab_size" = "512" must be a number/,
    /field "hidden_size" = 64.5 must be an integer/,
    /field "num_hidden_layers" = 0 must be > 0/,
  );
  const { intermediate_size: _, ...noInter } = llama();
  fails(noInter, /field "intermediate_size" is missing \(add it/);
  fails(llama({ num_key_value_heads: 3 }), /field "num_key_value_heads" = 3 must divide num_attention_heads \(8\)/);
  fails(
    llama({ hidden_size: 60 }),
    /field "head_dim" is missing \(set head_dim: hidden_size 60 is not a multiple of num_attention_heads 8\)/,
  );
  fails(llama({ head_dim: 7 }), /field "head_dim" = 7 gives head_dim 7, which must be even for RoPE/);
  fails([], /must hold a JSON object, got an array/);
});

test('lonas_layers: per-layer sizes, validated per layer', () => {
  const layers = [
    { intermediate_size: 100, num_attention_heads: 4, num_key_value_heads: 2 },
    { intermediate_size: 172, num_attention_heads: 8, num_key_value_heads: 8 },
  ];
  assert.deepEqual(parse(llama({ lonas_layers: layers, head_dim: 8 })).config.layers, [
    { intermediateSize: 100, numHeads: 4, numKvHeads: 2 },
    { intermediateSize: 172, numHeads: 8, numKvHeads: 8 },
  ]);
  fails(llama({ lonas_layers: layers.slice(1) }), /field "lonas_layers" = .* has 1 entries but num_hidden_layers is 2/);
  fails(
    llama({ lonas_layers: [layers[0], { ...layers[1], num_key_value_heads: 3 }] }),
    /field "lonas_layers\[1\].num_key_value_heads" = 3 must divide num_attention_heads \(8\)/,
  );
  fails(llama({ lonas_layers: [layers[0], { ...layers[1], heads: 3 }] }), /field "lonas_layers\[1\]" = .* has unknown keys heads/);
  fails(
    llama({ lonas_layers: [layers[0], { num_attention_heads: 2, num_key_value_heads: 1 }] }),
    /field "lonas_layers\[1\].intermediate_size" is missing \(each lonas_layers entry needs/,
  );
});

test('toHfConfig inverts parseHfConfig, keeps unknown base fields, writes lonas_layers only when layers differ', () => {
  const l3 = { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const src = llama({ rope_scaling: l3, rope_theta: 5e5, bos_token_id: 7, tie_word_embeddings: true, lonas_layers: undefined });
  const c = parse(src).config;
  const hf = toHfConfig(c, { ...src, lonas_layers: [{ stale: true }] });
  assert.equal(hf.bos_token_id, 7);
  assert.equal('lonas_layers' in hf, false, 'a stale lonas_layers of the base is dropped');
  assert.deepEqual(parse(hf).config, c);

  const sub: LlamaConfig = {
    ...c,
    layers: [
      { intermediateSize: 50, numHeads: 2, numKvHeads: 2 },
      { intermediateSize: 120, numHeads: 6, numKvHeads: 3 },
    ],
  };
  const hfSub = toHfConfig(sub, src);
  assert.deepEqual([hfSub.intermediate_size, hfSub.num_attention_heads, hfSub.num_key_value_heads, hfSub.head_dim], [120, 6, 3, 8]);
  assert.deepEqual(hfSub.lonas_layers, [
    { intermediate_size: 50, num_attention_heads: 2, num_key_value_heads: 2 },
    { intermediate_size: 120, num_attention_heads: 6, num_key_value_heads: 3 },
  ]);
  assert.deepEqual(parse(hfSub).config, sub);

  const v5 = toHfConfig(c, { model_type: 'llama', rope_parameters: { rope_type: 'default', rope_theta: 1 } });
  assert.deepEqual(v5.rope_parameters, { ...l3, rope_theta: 5e5 });
  assert.deepEqual(parse(v5).config, c);

  assert.equal(toHfConfig({ ...c, attentionBias: true }).model_type, 'qwen2');
  assert.throws(() => toHfConfig(c, { model_type: 'qwen2' }), /qwen2 config cannot express attentionBias=false/);
});

test('quantization_config.lm_head: parsed (absent = false), a quantised head is never tied, written back only when true', () => {
  const gptq = { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: false, sym: false, checkpoint_format: 'gptq' };
  const plain = parse(llama({ tie_word_embeddings: true, quantization_config: gptq })).config;
  assert.equal(plain.quantization?.lmHead, undefined);
  assert.equal(plain.tieWordEmbeddings, true);
  const head = parse(llama({ tie_word_embeddings: true, quantization_config: { ...gptq, lm_head: true } })).config;
  assert.equal(head.quantization?.lmHead, true);
  assert.equal(head.tieWordEmbeddings, false, 'the quantised head is its own module (lm_head.qweight), not the float embedding');
  assert.equal(parse(llama({ quantization_config: { ...gptq, lm_head: false } })).config.quantization?.lmHead, undefined);
  fails(llama({ quantization_config: { ...gptq, lm_head: 'yes' } }), /field "quantization_config.lm_head" = "yes" must be true or false/);

  const hf = toHfConfig(head, llama({ quantization_config: gptq }));
  assert.equal((hf.quantization_config as { lm_head?: boolean }).lm_head, true);
  assert.equal(hf.tie_word_embeddings, false);
  assert.deepEqual(parse(hf).config, head);
  const back = toHfConfig(plain, hf);
  assert.equal('lm_head' in (back.quantization_config as object), false, 'a float head drops a stale lm_head of the base');
});
