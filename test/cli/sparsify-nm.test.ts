/** `lonas sparsify --nm N:M` fixes the sparsity (1 − N/M): giving --sparsity as well is refused, not ignored. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lonas } from '../helpers/cli.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lonas-nm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('--nm 2:4 with --sparsity refuses the conflict and writes nothing', () => {
  const out = join(dir, 'both');
  const r = spawnSync(
    process.execPath,
    [BIN, 'sparsify', '--model', STORIES_F32(), '--method', 'magnitude', '--nm', '2:4', '--sparsity', '0.7', '--out', out],
    { encoding: 'utf8' },
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--nm 2:4 prunes 2 of every 4 inputs \(sparsity 0\.5\); drop --sparsity 0\.7, or drop --nm/);
  assert.equal(existsSync(out), false);
});

test('--nm 2:4 alone records the sparsity its pattern sets', () => {
  const out = join(dir, 'nm');
  lonas('sparsify', '--model', STORIES_F32(), '--method', 'magnitude', '--nm', '2:4', '--out', out);
  const c = JSON.parse(readFileSync(join(out, 'lonas_compression.json'), 'utf8')) as {
    sparsity: number;
    nm: string;
    achieved_sparsity: number;
  };
  assert.deepEqual([c.sparsity, c.nm], [0.5, '2:4']);
  assert.equal(c.achieved_sparsity, 0.5);
});
