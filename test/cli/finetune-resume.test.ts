/** `lonas finetune` and the checkpoint in --out: a finished run stays finished, a checkpoint is never silently discarded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { readRunConfig } from '../../src/io/artifacts.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const finetune = (out: string, ...extra: string[]) =>
  spawnSync(
    process.execPath,
    [
      BIN,
      'finetune',
      '--model',
      STORIES_F32(),
      '--data',
      `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:24`,
      '--out',
      out,
      '--steps',
      '4',
      '--rank',
      '4',
      '--batch-size',
      '2',
      '--grad-accum',
      '1',
      '--cutoff-len',
      '64',
      '--val-size',
      '4',
      ...extra,
    ],
    { encoding: 'utf8' },
  );
const bytes = (out: string) => ['run_config.json', 'adapter_model.safetensors', 'train_log.jsonl'].map((f) => readFileSync(join(out, f)));

test('finetune --resume on a finished run says so and leaves the run as it was', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ft-done-'));
  const first = finetune(out);
  assert.equal(first.status, 0, first.stderr);
  const before = bytes(out);
  const again = finetune(out, '--resume');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /done: 4 steps \(finished earlier: the checkpoint .* is at step 4 of 4, nothing left to train\)/);
  assert.doesNotMatch(again.stderr, /NaN/);
  assert.deepEqual(bytes(out), before, 'run_config.json, the adapter and the log unchanged');
  assert.ok(Number.isFinite(readRunConfig(out)!.result.finalLoss));

  // killed after the last checkpoint but before run_config.json: --resume completes the outputs from the checkpoint and the log
  rmSync(join(out, 'run_config.json'));
  rmSync(join(out, 'adapter_model.safetensors'));
  const completed = finetune(out, '--resume');
  assert.equal(completed.status, 0, completed.stderr);
  const [config, adapter] = bytes(out);
  assert.ok(adapter.equals(before[1]), 'the same adapter');
  const result = JSON.parse(config.toString()).result;
  const last = JSON.parse(
    before[2]
      .toString()
      .trim()
      .split('\n')
      .filter((l) => JSON.parse(l).type === 'step')
      .at(-1)!,
  );
  assert.equal(result.finalLoss, last.loss, 'the final loss recorded in train_log.jsonl');
  assert.equal(result.steps, 4);
});

test('finetune into a directory holding a checkpoint refuses without --resume; --overwrite starts over', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ft-keep-'));
  const first = finetune(out);
  assert.equal(first.status, 0, first.stderr);
  const before = bytes(out);
  const refused = finetune(out);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /holds a training checkpoint \(step 4\).*--resume to continue it, or --overwrite/);
  assert.deepEqual(bytes(out), before, 'nothing discarded');
  const both = finetune(out, '--resume', '--overwrite');
  assert.notEqual(both.status, 0);
  assert.match(both.stderr, /--resume and --overwrite/);
  const fresh = finetune(out, '--overwrite');
  assert.equal(fresh.status, 0, fresh.stderr);
  assert.match(fresh.stderr, /done: 4 steps, final loss/);
  assert.doesNotMatch(fresh.stderr, /resuming/);
  assert.ok(bytes(out)[1].equals(before[1]), 'trained again from the start: the same adapter as the first run');
});
