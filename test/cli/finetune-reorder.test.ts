/** `lonas finetune --reorder-channels` end to end on stories260K (issue #4): order recorded, reload, resume. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORIES_F32, asset } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const lonas = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const DATA = () => `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:48`;
const finetune = (out: string, ...extra: string[]) =>
  lonas(
    'finetune',
    '--model',
    STORIES_F32(),
    '--data',
    DATA(),
    '--out',
    out,
    '--rank',
    '4',
    '--alpha',
    '8',
    '--batch-size',
    '4',
    '--grad-accum',
    '1',
    '--lr',
    '2e-3',
    '--cutoff-len',
    '64',
    '--seed',
    '1',
    '--checkpoint-every',
    '0',
    ...extra,
  );
const lonasMeta = (dir: string) => JSON.parse(readFileSync(join(dir, 'lonas_adapter.json'), 'utf8'));

test('finetune --reorder-channels: the order is recorded, the adapter reloads at minimal, and --resume re-applies the same order', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ft-reorder-'));
  const r = finetune(out, '--steps', '3', '--reorder-channels');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /MLP channels reordered by magnitude importance: \d+ of 860 channels moved/);
  const order = lonasMeta(out).mlp_channel_order as number[][];
  assert.equal(order.length, 5);
  for (const p of order)
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 172 }, (_, j) => j),
      'a permutation of 172 channels',
    );
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'mlp_channel_order.json'), 'utf8')), { mode: 'magnitude', mlp_channel_order: order });
  const ppl = lonas(
    'perplexity',
    '--model',
    STORIES_F32(),
    '--adapter',
    out,
    '--subnet',
    'minimal',
    '--text',
    asset('models', 'stories260K', 'expected_greedy_256_from_bos.f32.txt'),
    '--json',
  );
  assert.equal(ppl.status, 0, ppl.stderr);
  const weights = readFileSync(join(out, 'adapter_model.safetensors'));
  const again = finetune(out, '--steps', '3', '--reorder-channels', '--resume');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /MLP channels reordered as recorded in/);
  assert.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(weights), 'the resumed run saves the same adapter bytes');
  const other = finetune(out, '--steps', '3', '--reorder-channels', 'activation', '--resume');
  assert.notEqual(other.status, 0);
  assert.match(other.stderr, /mlp_channel_order\.json was written with --reorder-channels magnitude, this run asks for activation/);
});

test('finetune --reorder-channels activation calibrates on training examples; a space without mlp_width leaves channels in place', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ft-reorder-act-'));
  const r = finetune(out, '--steps', '1', '--reorder-channels', 'activation');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /reordered by activation importance \(32 training examples\)/);
  assert.equal(lonasMeta(out).mlp_channel_order.length, 5);
  const nls = mkdtempSync(join(tmpdir(), 'lonas-ft-reorder-nls-'));
  const n = finetune(nls, '--steps', '1', '--space', 'nls', '--reorder-channels');
  assert.equal(n.status, 0, n.stderr);
  assert.match(n.stderr, /search space "nls" has no mlp_width group.*channels left in place/);
  assert.equal(lonasMeta(nls).mlp_channel_order, undefined);
  assert.ok(!existsSync(join(nls, 'mlp_channel_order.json')));
  const bad = finetune(nls, '--steps', '1', '--reorder-channels', 'random');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--reorder-channels.*Allowed choices are magnitude, activation/);
});
