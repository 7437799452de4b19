/**
 * saveModelDir writes a quantization_config that describes exactly the tensors it writes: the projections
 * that are GPTQ (modules_in_block_to_quantize when not all are, never a stale list carried over), sym and
 * desc_act as the model's config declares them, and an error for what one config cannot describe.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quantizeModel } from '../../src/compress/quantize.ts';
import type { QuantizeOptions } from '../../src/compress/quantize.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/weights.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { Rng } from '../../src/tensor/index.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const rng = new Rng(3);
const samples = Array.from({ length: 4 }, () => Int32Array.from({ length: 12 }, () => rng.int(40)));
const OPTS: QuantizeOptions = { bits: 4, groupSize: 8, actOrder: false, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] };

function saved(model: ReturnType<typeof tinyModel>, hfConfig?: object): Record<string, unknown> {
  const root = mkdtempSync(join(tmpdir(), 'lonas-gptq-config-'));
  try {
    saveModelDir(join(root, 'm'), model, { hfConfig });
    return JSON.parse(readFileSync(join(root, 'm', 'config.json'), 'utf8')).quantization_config;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('a model with only some projections GPTQ lists them (modules_in_block_to_quantize) and reloads so', () => {
  const model = tinyModel(4);
  quantizeModel(model, samples, { ...OPTS, targets: ['q_proj', 'v_proj'] });
  const root = mkdtempSync(join(tmpdir(), 'lonas-gptq-partial-'));
  try {
    saveModelDir(root, model, { overwrite: true });
    const q = JSON.parse(readFileSync(join(root, 'config.json'), 'utf8')).quantization_config;
    assert.deepEqual(q.modules_in_block_to_quantize, [['self_attn.q_proj', 'self_attn.v_proj']]);
    const back = loadLlama(root);
    for (const l of back.layers)
      assert.deepEqual(
        PROJECTIONS.filter((p) => l.proj[p] instanceof QuantLinear),
        ['q_proj', 'v_proj'],
      );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('every field follows the model: a stale module list is dropped, sym and desc_act as declared, the rest kept', () => {
  const model = tinyModel(4);
  quantizeModel(model, samples, OPTS);
  model.config.quantization = { ...model.config.quantization!, sym: true };
  const stale = {
    quantization_config: {
      quant_method: 'gptq',
      modules_in_block_to_quantize: [['self_attn.q_proj']],
      sym: false,
      desc_act: true,
      damp_percent: 0.1,
    },
  };
  const { checkpoint_format: format, ...q } = saved(model, stale);
  assert.deepEqual(q, { quant_method: 'gptq', bits: 4, group_size: 8, desc_act: false, sym: true, damp_percent: 0.1 });
  assert.ok(format === 'gptq' || format === 'gptq_v2');
});

test('modules on different grids are refused: one quantization_config cannot describe them', () => {
  const model = tinyModel(4);
  quantizeModel(model, samples, OPTS);
  const m = model.layers[1].proj.up_proj as QuantLinear;
  model.layers[1].proj.up_proj = new QuantLinear(m.base, { ...m.qw, bits: 8 });
  assert.throws(
    () => saved(model),
    /model\.layers\.1\.mlp\.up_proj is 8-bit with group size 8, .* 4-bit .*one quantization_config cannot describe that/,
  );
});
