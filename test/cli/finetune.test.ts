/** `lonas finetune` end to end on stories260K with a small slice of the shared ARC/BoolQ train sets. */
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

test('finetune: loss falls, an adapter is written, reloads for generate/perplexity at every named sub-network', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ft-'));
  const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:120,${asset('datasets', 'llm-adapters', 'dataset', 'boolq', 'train.json')}:120`;
  const r = lonas(
    'finetune',
    '--model',
    STORIES_F32(),
    '--data',
    data,
    '--out',
    out,
    '--steps',
    '24',
    '--rank',
    '8',
    '--alpha',
    '16',
    '--batch-size',
    '4',
    '--grad-accum',
    '2',
    '--lr',
    '2e-3',
    '--cutoff-len',
    '96',
    '--val-size',
    '24',
    '--seed',
    '1',
  );
  assert.equal(r.status, 0, r.stderr);
  for (const f of [
    'adapter_model.safetensors',
    'adapter_config.json',
    'lonas_adapter.json',
    'train_log.jsonl',
    'run_config.json',
    'checkpoint/trainer_state.json',
  ]) {
    assert.ok(existsSync(join(out, f)), `${f} written`);
  }
  const steps = readFileSync(join(out, 'train_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((l) => l.type === 'step');
  const mean = (xs: { loss: number }[]) => xs.reduce((s, x) => s + x.loss, 0) / xs.length;
  assert.ok(
    mean(steps.slice(-6)) < mean(steps.slice(0, 6)) - 0.5,
    `loss falls: ${mean(steps.slice(0, 6)).toFixed(3)} → ${mean(steps.slice(-6)).toFixed(3)}`,
  );
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 8);
  for (const subnet of ['maximal', 'heuristic', 'minimal']) {
    const g = lonas(
      'generate',
      '--model',
      STORIES_F32(),
      '--adapter',
      out,
      '--subnet',
      subnet,
      '--prompt',
      'Once upon a time',
      '--max-new-tokens',
      '8',
    );
    assert.equal(g.status, 0, g.stderr);
  }
  const bad = lonas('generate', '--model', STORIES_F32(), '--adapter', out, '--subnet', 'medium', '--prompt', 'x');
  assert.match(bad.stderr, /--subnet medium: not one of maximal, heuristic, minimal/);
  const resumed = lonas(
    'finetune',
    '--model',
    STORIES_F32(),
    '--data',
    data,
    '--out',
    out,
    '--steps',
    '24',
    '--rank',
    '8',
    '--alpha',
    '16',
    '--batch-size',
    '4',
    '--grad-accum',
    '2',
    '--lr',
    '2e-3',
    '--cutoff-len',
    '96',
    '--val-size',
    '24',
    '--seed',
    '1',
    '--resume',
  );
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /done: 24 steps/);
});

test('finetune --compute bf16 logs the mode and follows the f32 loss curve within 2% (relative, every step)', () => {
  const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:48`;
  const run = (compute: string) => {
    const out = mkdtempSync(join(tmpdir(), `lonas-ft-${compute}-`));
    const r = lonas(
      'finetune',
      '--model',
      STORIES_F32(),
      '--data',
      data,
      '--out',
      out,
      '--steps',
      '8',
      '--rank',
      '8',
      '--batch-size',
      '4',
      '--grad-accum',
      '1',
      '--dropout',
      '0',
      '--cutoff-len',
      '64',
      '--compute',
      compute,
    );
    assert.equal(r.status, 0, r.stderr);
    const losses = readFileSync(join(out, 'train_log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.type === 'step')
      .map((l) => l.loss as number);
    return { stderr: r.stderr, losses };
  };
  const bf = run('bf16'),
    f32 = run('f32');
  assert.match(bf.stderr, /compute bf16: .*float32 weights are rounded to bfloat16 once/);
  assert.doesNotMatch(f32.stderr, /compute bf16/);
  assert.equal(bf.losses.length, 8);
  bf.losses.forEach((l, i) => assert.ok(Math.abs(l - f32.losses[i]) <= 0.02 * f32.losses[i], `step ${i}: bf16 ${l}, f32 ${f32.losses[i]}`));
  assert.notDeepEqual(bf.losses, f32.losses, 'bf16 compute changed nothing');
});
