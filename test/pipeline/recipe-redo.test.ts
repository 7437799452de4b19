/** `lonas run --from finetune` redoes the fine-tuning from the start instead of resuming its finished checkpoint. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'lonas.js');

test('--from finetune passes --overwrite to the fine-tuning, which trains all its steps again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-run-redo-'));
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lora.json'), 'utf8'));
  r.data.train = ['${assets}/datasets/llm-adapters/dataset/ARC-Easy/train.json:16'];
  r.data.tasks = ['ARC-Easy'];
  r.finetune = { ...r.finetune, steps: 3, rank: 4, alpha: 8, cutoffLen: 64, gradAccum: 1, batchSize: 2 };
  r.eval = { ...r.eval, beams: 1, limit: 2, maxNewTokens: 2 };
  r.bench = { promptLen: 8, genLen: 2, repeats: 1 };
  const recipe = join(dir, 'recipe.json');
  writeFileSync(recipe, JSON.stringify(r));
  const run = (...extra: string[]) =>
    spawnSync(process.execPath, [BIN, 'run', recipe, '--out', join(dir, 'run'), ...extra], { encoding: 'utf8' });
  const first = run();
  assert.equal(first.status, 0, first.stderr);
  const redo = run('--from', 'finetune');
  assert.equal(redo.status, 0, redo.stderr);
  assert.match(redo.stderr, /\$ lonas finetune .*--overwrite/);
  assert.doesNotMatch(redo.stderr, /--resume|finished earlier/);
});
