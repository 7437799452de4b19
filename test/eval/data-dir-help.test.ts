/**
 * The evaluation data directory as a new user meets it: `lonas eval --help` lists only tasks whose data
 * exist, and a missing default data directory is an error that names LONAS_ASSETS (both run the CLI).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TASKS } from '../../src/eval/tasks.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'lonas-datadir-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** `lonas ...args` with LONAS_ASSETS set to `assets` (cwd: a directory with no ../shared beside it) */
function run(assets: string, ...args: string[]) {
  const env = { ...process.env, LONAS_ASSETS: assets };
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, cwd: root });
}

test('--tasks help lists exactly the tasks with a <task>/test.json in the default data directory', () => {
  const assets = join(root, 'assets');
  for (const task of ['boolq', 'gsm8k']) {
    mkdirSync(join(assets, 'datasets', 'llm-adapters', 'dataset', task), { recursive: true });
    writeFileSync(join(assets, 'datasets', 'llm-adapters', 'dataset', task, 'test.json'), '[]');
  }
  const help = run(assets, 'eval', '--help').stdout.replace(/\s+/g, ' ');
  assert.match(help, /with data in .*dataset: boolq,gsm8k /);
  for (const t of TASKS) if (t.name !== 'boolq' && t.name !== 'gsm8k') assert.doesNotMatch(help, new RegExp(`[ ,:]${t.name}[ ,]`), t.name);
});

test('without any default data directory the help says to pass --data-dir, and the error names LONAS_ASSETS', () => {
  const nowhere = join(root, 'no-assets');
  assert.match(run(nowhere, 'eval', '--help').stdout.replace(/\s+/g, ' '), /no default data directory here, so pass --data-dir/);
  const r = run(nowhere, 'eval', '--model', STORIES_F32(), '--tasks', 'boolq');
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    /no data directory: pass --data-dir DIR .*or set LONAS_ASSETS to the assets directory holding datasets\/llm-adapters\/dataset/,
  );
  assert.match(r.stderr, /\$LONAS_ASSETS\/datasets\/llm-adapters\/dataset \(.*no-assets\/datasets\/llm-adapters\/dataset\) does not exist/);
});
