/**
 * `lonas quantize --bits` accepts exactly the code widths the loader accepts (quantization_config.bits), and a
 * 2-bit model written by quantizeModel loads back computing the same logits (tiny Llama).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quantizeModel } from '../../src/compress/quantize.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { parseHfConfig } from '../../src/models/llama/hf-config.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import { quantizeSpec } from '../../src/options/compress.ts';
import { parseOptions } from '../../src/options/schema.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const required = { model: 'm', calib: 'c.txt', out: 'o' };
const config = (bits: number) => ({
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  quantization_config: { quant_method: 'gptq', bits, group_size: 8 },
});

test('--bits and quantization_config.bits accept and refuse the same widths', () => {
  for (const bits of [1, 2, 3, 4, 5, 6, 7, 8, 16]) {
    let flag = true,
      loader = true;
    try {
      parseOptions(quantizeSpec, { ...required, bits });
    } catch {
      flag = false;
    }
    try {
      parseHfConfig(config(bits), 'config.json');
    } catch {
      loader = false;
    }
    assert.equal(flag, loader, `bits ${bits}: --bits ${flag ? 'accepts' : 'refuses'}, the loader ${loader ? 'accepts' : 'refuses'}`);
  }
  assert.equal(parseOptions(quantizeSpec, { ...required, bits: 2 }).bits, 2);
});

test('a 2-bit GPTQ model saves and loads back with the same logits', () => {
  const model = tinyModel(3);
  const rng = new Rng(5);
  const samples = Array.from({ length: 4 }, () => Int32Array.from({ length: 12 }, () => rng.int(model.config.vocabSize)));
  quantizeModel(model, samples, { bits: 2, groupSize: 8, actOrder: false, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] });
  const root = mkdtempSync(join(tmpdir(), 'lonas-bits-'));
  try {
    saveModelDir(join(root, 'm'), model);
    const loaded = loadLlama(join(root, 'm'));
    assert.equal(loaded.config.quantization?.bits, 2);
    const ids = Int32Array.from([1, 5, 9, 3]);
    const logits = (m: typeof model) => noGrad(() => Array.from(m.forward(ids, 1, ids.length).contiguousData()));
    assert.deepEqual(logits(loaded), logits(model));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
