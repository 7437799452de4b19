/** The `lonas` CLI end to end on the real stories260K model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ASSETS, STORIES_F32 } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const lonas = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

test('lonas generate --prompt "" prints the reference greedy story byte for byte', () => {
  const r = lonas('generate', '--model', STORIES_F32(), '--prompt', '', '--max-new-tokens', '256', '--greedy');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(ASSETS, 'models', 'stories260K', 'expected_greedy_256_from_bos.f32.txt'), 'utf8'));
});

test('lonas generate with sampling and beams runs; bad options are clear errors', () => {
  const s = lonas(
    'generate',
    '--model',
    STORIES_F32(),
    '--prompt',
    'Once upon a time',
    '--max-new-tokens',
    '20',
    '--temperature',
    '0.8',
    '--top-p',
    '0.9',
    '--seed',
    '3',
  );
  assert.equal(s.status, 0, s.stderr);
  assert.equal(
    s.stdout,
    lonas(
      'generate',
      '--model',
      STORIES_F32(),
      '--prompt',
      'Once upon a time',
      '--max-new-tokens',
      '20',
      '--temperature',
      '0.8',
      '--top-p',
      '0.9',
      '--seed',
      '3',
    ).stdout,
  );
  const b = lonas('generate', '--model', STORIES_F32(), '--prompt', 'Once upon a time', '--max-new-tokens', '10', '--beams', '3');
  assert.equal(b.status, 0, b.stderr);
  assert.ok(b.stdout.trim().length > 0);
  const bad = lonas('generate', '--model', STORIES_F32(), '--prompt', 'x', '--top-p', '2');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--top-p must be in \(0, 1\]/);
  const missing = lonas('generate', '--model', '/nonexistent/model', '--prompt', 'x');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^lonas: .*\/nonexistent\/model/);
  assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/, 'no stack trace');
});

test('lonas perplexity --json on a story', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-ppl-'));
  const file = join(dir, 'story.txt');
  writeFileSync(file, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.');
  const r = lonas('perplexity', '--model', STORIES_F32(), '--text', file, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.ok(j.tokens > 15 && j.tokens < 40, `tokens ${j.tokens}`);
  assert.ok(j.nll > 0 && j.nll < 3, `a story the model was trained on is likely: nll ${j.nll}`);
  assert.ok(Math.abs(j.ppl - Math.exp(j.nll)) < 1e-9);
  const gibberish = join(dir, 'noise.txt');
  writeFileSync(gibberish, 'zq xv kj qq wp zz vb nm qx jj kz vq');
  assert.ok(JSON.parse(lonas('perplexity', '--model', STORIES_F32(), '--text', gibberish, '--json').stdout).nll > j.nll + 1);
});

test('lonas generate --compute bf16 logs the mode and prefills on the bf16 GEMM; --compute takes f32 or bf16 only', () => {
  const prompt = 'Once upon a time there was a little girl named Lily who loved to play outside in the park with her friends';
  const args = ['generate', '--model', STORIES_F32(), '--prompt', prompt, '--max-new-tokens', '8', '--greedy'];
  const bf = lonas(...args, '--compute', 'bf16');
  assert.equal(bf.status, 0, bf.stderr);
  assert.match(bf.stderr, /compute bf16: products with more than 16 rows .* float32 weights are rounded to bfloat16 once/);
  assert.ok(bf.stdout.trim().length > 0);
  const f32 = lonas(...args);
  assert.equal(f32.status, 0, f32.stderr);
  assert.doesNotMatch(f32.stderr, /compute bf16/);
  const bad = lonas(...args, '--compute', 'fp8');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--compute <mode>.*Allowed choices are f32, bf16/s);
});
