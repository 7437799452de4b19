/** `lonas finetune` states its memory estimate before the first step, turns checkpointing on when needed, refuses what cannot fit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORIES_BF16, asset } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const finetune = (...extra: string[]) => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ftmem-'));
  const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:16`;
  const args = [
    'finetune',
    '--model',
    STORIES_BF16(),
    '--data',
    data,
    '--out',
    out,
    '--steps',
    '2',
    '--batch-size',
    '4',
    '--grad-accum',
    '1',
  ];
  const r = spawnSync(process.execPath, [BIN, ...args, '--cutoff-len', '64', ...extra], { encoding: 'utf8' });
  return { ...r, out };
};
/** "0.21 GiB" / "37 MiB" → bytes */
const bytes = (s: string) => Number.parseFloat(s) * (s.endsWith('GiB') ? 2 ** 30 : 2 ** 20);

test('the estimate is logged before the first step, with the measured peak after it', () => {
  const r = finetune();
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const est = lines.findIndex((l) => l.startsWith('memory: estimated peak '));
  const first = lines.findIndex((l) => l.startsWith('finetune: step 1/'));
  assert.ok(est >= 0 && first > est, r.stderr);
  assert.match(
    lines[est],
    /= weights .* \+ adapters and optimizer .* for batch 4 × \d+ tokens, [\d.]+ GiB available \(of .*\); gradient checkpointing off: not needed/,
  );
  const m = /peak RSS after the first step ([\d.]+ [GM]iB) \(estimated ([\d.]+ [GM]iB)\)/.exec(r.stderr);
  assert.ok(m, r.stderr);
  // stories260K is all runtime; the estimate only has to be an honest upper bound here (the bench checks the 7B shapes)
  assert.ok(bytes(m[1]) <= bytes(m[2]) * 1.25, m[0]);
});

test('--gradient-checkpointing: the log says it is on, and the adapter equals the one trained without it bit for bit', () => {
  const plain = finetune('--gradient-checkpointing', 'off');
  assert.equal(plain.status, 0, plain.stderr);
  const on = finetune('--gradient-checkpointing');
  assert.equal(on.status, 0, on.stderr);
  assert.match(on.stderr, /gradient checkpointing on \(--gradient-checkpointing on\)/);
  const read = (dir: string) => readFileSync(join(dir, 'adapter_model.safetensors'));
  assert.ok(read(on.out).equals(read(plain.out)), 'the same adapter bit for bit');
});

test('a run that cannot fit is refused before training, with the numbers and the fix', () => {
  const r = finetune('--memory-limit', '0.01', '--gradient-checkpointing', 'off');
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    /finetune would need about .* = weights .* \+ activations .* for batch 4 × \d+ tokens, more than the 10 MiB set by --memory-limit/,
  );
  assert.match(
    r.stderr,
    /nothing at this sequence length fits: even batch 1 with checkpointing needs .*; or --memory-limit GIB to try anyway/,
  );
  assert.ok(!existsSync(join(r.out, 'train_log.jsonl')), 'nothing trained');
});
