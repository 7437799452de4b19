/** `lonas search`'s summary line names each cost once: the objective (with its ratio to maximal), then the others. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lonas } from '../helpers/cli.ts';
import { STORIES_F32, asset } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'lonas-search-summary-'));
after(() => rmSync(root, { recursive: true, force: true }));
const adapter = join(root, 'adapter');
const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:24`;
const tiny = '--steps 1 --rank 4 --cutoff-len 64 --val-size 4'.split(' ');
lonas('finetune', '--model', STORIES_F32(), '--data', data, '--out', adapter, ...tiny);

const searchArgs = ['--model', STORIES_F32(), '--adapter', adapter, ...'--mode loss --evals 4 --population 2 --val-size 4'.split(' ')];
const count = (text: string, word: string) => text.split(new RegExp(`\\b${word}\\b`)).length - 1;

for (const objective of ['macs', 'params']) {
  test(`--objective ${objective}: the best line names params and macs once each`, () => {
    const r = spawnSync(process.execPath, [BIN, 'search', ...searchArgs, '--objective', objective, '--out', join(root, objective)], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const best = `${r.stdout}${r.stderr}`.split('\n').find((l) => l.startsWith('best:'));
    assert.ok(best, r.stderr);
    assert.equal(count(best, 'macs'), 1, best);
    assert.equal(count(best, 'params'), 1, best);
    assert.match(best, new RegExp(`, ${objective} \\S+ \\([\\d.]+× maximal\\)`));
  });
}
