/** The artifacts module: typed round trips, and malformed files rejected with the file and the field named. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readChannelOrder,
  readCompression,
  readLonasAdapter,
  readRunConfig,
  readSearchResult,
  readStageRecord,
  writeChannelOrder,
  writeCompression,
  writeLonasAdapter,
  writeRunConfig,
  writeStageRecord,
} from '../../src/io/artifacts.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'lonas-artifacts-'));
const result = { steps: 3, finalLoss: 1.5, valLoss: null, tokensSeen: 100, seconds: 2 };

test('run_config.json: what finetune writes, search reads back typed; defaults for fields older files lack', () => {
  const d = dir();
  assert.equal(readRunConfig(d), null, 'absent: null');
  const options = { data: 'a.json:10', seed: 7, valSize: 4, cutoffLen: 64, trainOnInputs: false, rank: 8 }; // every finetune option is written
  writeRunConfig(d, { command: 'finetune', options, result, node: 'v20' });
  assert.deepEqual(readRunConfig(d)!.options, { data: 'a.json:10', seed: 7, valSize: 4, cutoffLen: 64, trainOnInputs: false });
  writeFileSync(
    join(d, 'run_config.json'),
    JSON.stringify({ command: 'finetune', options: { data: 'a.json', seed: 1 }, result, node: 'v20' }),
  );
  assert.deepEqual(readRunConfig(d)!.options, { data: 'a.json', seed: 1, valSize: 0, cutoffLen: 256, trainOnInputs: true });
  writeFileSync(
    join(d, 'run_config.json'),
    JSON.stringify({ command: 'finetune', options: { data: 'a.json', seed: '1' }, result, node: 'v20' }),
  );
  assert.throws(
    () => readRunConfig(d),
    (e: Error) =>
      e.message.startsWith(join(d, 'run_config.json')) && /field "options.seed": Expected number, received string/.test(e.message),
  );
  writeFileSync(join(d, 'run_config.json'), '{"command": "finetune",');
  assert.throws(() => readRunConfig(d), new RegExp(`${join(d, 'run_config.json')}: not valid JSON`));
});

test('lonas_adapter.json: absent reads as a plain LoRA adapter; a bad mode names the field', () => {
  const d = dir();
  assert.equal(readLonasAdapter(d).mode, 'lora');
  writeLonasAdapter(d, { format: 1, search_space: { groups: [] }, mode: 'qa', mlp_channel_order: [[1, 0]] });
  assert.deepEqual(readLonasAdapter(d), { format: 1, search_space: { groups: [] }, mode: 'qa', mlp_channel_order: [[1, 0]] });
  writeFileSync(join(d, 'lonas_adapter.json'), JSON.stringify({ format: 1, mode: 'dora' }));
  assert.throws(() => readLonasAdapter(d), /lonas_adapter.json: not a valid lonas_adapter.json: field "mode"/);
});

test('lonas_compression.json: the sparsify and GPTQ records, told apart by method', () => {
  const d = dir();
  assert.equal(readCompression(d), null);
  writeCompression(d, {
    method: 'gptq',
    bits: 4,
    group_size: 128,
    act_order: false,
    damp: 0.01,
    nsamples: 8,
    seqlen: 64,
    calib: '/c',
    seed: 0,
    source: '/m',
    lm_head: true,
  });
  const gptq = readCompression(d)!;
  assert.ok(gptq.method === 'gptq' && gptq.bits === 4 && gptq.lm_head);
  writeCompression(d, {
    method: 'wanda',
    sparsity: 0.5,
    nm: '2:4',
    nsamples: 8,
    seqlen: 64,
    calib: null,
    seed: 0,
    achieved_sparsity: 0.5,
    modules: [],
  });
  assert.equal(readCompression(d)!.method, 'wanda');
  writeFileSync(join(d, 'lonas_compression.json'), JSON.stringify({ method: 'gptq', bits: 4 }));
  assert.throws(() => readCompression(d), /lonas_compression.json: .*field "group_size": Required/);
});

test('channel order, stage records and the search result', () => {
  const d = dir();
  assert.equal(readChannelOrder(d), null);
  writeChannelOrder(d, { mode: 'magnitude', mlp_channel_order: [[2, 0, 1]] });
  assert.deepEqual(readChannelOrder(d), { mode: 'magnitude', mlp_channel_order: [[2, 0, 1]] });
  const record = { name: 'finetune', seconds: 1.5, outputs: ['/o/adapter'], finishedAt: '2026-12-01T00:00:00.000Z' };
  mkdirSync(join(d, 'stages'));
  writeStageRecord(d, record);
  assert.deepEqual(readStageRecord(d, 'finetune'), record);
  writeFileSync(join(d, 'stages', 'eval.json'), JSON.stringify({ name: 'eval', seconds: 'long' }));
  assert.throws(
    () => readStageRecord(d, 'eval'),
    /stages\/eval.json: not a valid stage record \(delete it to redo the stage\): field "seconds"/,
  );
  assert.equal(readSearchResult(d), null, 'no pareto.json: no search result');
});
