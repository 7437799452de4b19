/**
 * `lonas inspect` reads config.json and the safetensors headers only, unless --sparsity asks for the zeros:
 * every tensor-data reader of SafetensorsFile is made to throw, and the report still comes out, with the
 * sizes the loaded model has; --sparsity then counts the zeros the weights really hold.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { countParams } from '../../src/nas/cost.ts';
import { inspectModel } from '../../src/cli/inspect.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-inspect-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const READERS = ['readFloat32', 'readBf16Bits', 'readFloat64', 'readInt32', 'readRaw', 'readRawSlice'] as const;

/** Runs `fn` with every data reader of SafetensorsFile throwing; returns its result and the readers it tried. */
function withoutDataReads<T>(fn: () => T): { result: T; tried: string[] } {
  const proto = SafetensorsFile.prototype as unknown as Record<string, unknown>;
  const saved = READERS.map((r) => proto[r]);
  const tried: string[] = [];
  for (const r of READERS)
    proto[r] = () => {
      tried.push(r);
      throw new Error(`inspect read tensor data (${r})`);
    };
  try {
    return { result: fn(), tried };
  } finally {
    READERS.forEach((r, k) => (proto[r] = saved[k]));
  }
}

test('inspect reads headers only by default (sizes, dtype, counts); --sparsity counts the zeros, tensor by tensor', () => {
  const model = join(dir, 'bf16');
  const m = tinyModel(4, tinyConfig({ numLayers: 3, attentionBias: true }));
  const up = m.namedParameters().get('model.layers.1.mlp.up_proj.weight')!;
  for (let i = 0; i < up.size; i += 2) up.data[i] = 0;
  saveModelDir(model, m, { dtype: 'BF16', shardBytes: 4096 });
  const want = countParams(loadLlama(model));

  const { result: s, tried } = withoutDataReads(() => inspectModel({ model, json: true, sparsity: false }));
  assert.deepEqual(tried, [], 'no tensor data was read');
  assert.equal(s.dtype, 'BF16');
  assert.equal(s.params, want.total);
  assert.equal(s.nonZero, null, 'sparsity is not known without reading the weights');
  assert.deepEqual(
    s.perLayer.map((r) => r.intermediate),
    [24, 24, 24],
  );

  const counted = inspectModel({ model, json: true, sparsity: true });
  assert.equal(counted.nonZero, want.nonZero);
  assert.equal(counted.params - counted.nonZero!, up.size / 2, 'the zeros of up_proj');
  assert.equal(counted.perLayer[1].nonZero, counted.perLayer[1].params - up.size / 2);
  assert.deepEqual({ ...counted, nonZero: null, sparsity: null, perLayer: null }, { ...s, sparsity: null, perLayer: null });
});

test('inspect refuses a checkpoint whose header shapes disagree with config.json, without reading data', () => {
  const model = join(dir, 'wrong');
  saveModelDir(model, tinyModel(4), { dtype: 'F32' });
  // the weights of a 20-channel MLP under a config.json that says 24
  const mismatch = join(dir, 'mismatch');
  saveModelDir(mismatch, tinyModel(4, tinyConfig({ intermediateSize: 20 })), { dtype: 'F32' });
  copyFileSync(join(model, 'config.json'), join(mismatch, 'config.json'));
  const { tried } = withoutDataReads(() =>
    assert.throws(
      () => inspectModel({ model: mismatch, json: true, sparsity: false }),
      /gate_proj.weight' has shape \[20, 16\], config.json's sizes need \[24, 16\]/,
    ),
  );
  assert.deepEqual(tried, []);
});
