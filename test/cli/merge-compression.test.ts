/**
 * `lonas merge` keeps the base's lonas_compression.json while it still describes the merged model: a
 * SparsePEFT merge keeps every zero (record carried over), a plain LoRA merge fills them (record dropped, said).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lonas } from '../helpers/cli.ts';
import { STORIES_F32, asset } from '../helpers/assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lonas-merge-comp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:16`;
const ft = ['--data', data, '--steps', '2', '--rank', '4', '--alpha', '8', '--cutoff-len', '64', '--lr', '1e-2'];
const sparse = join(dir, 'sparse');
lonas('sparsify', '--model', STORIES_F32(), '--method', 'magnitude', '--sparsity', '0.5', '--out', sparse);
const record = readFileSync(join(sparse, 'lonas_compression.json'), 'utf8');

/** `lonas merge` of a fresh adapter (finetune `extra` flags) onto the sparse base: its stderr */
function merge(name: string, ...extra: string[]): string {
  lonas('finetune', '--model', sparse, ...ft, ...extra, '--out', join(dir, `${name}-adapter`));
  const r = spawnSync(
    process.execPath,
    [BIN, 'merge', '--model', sparse, '--adapter', join(dir, `${name}-adapter`), '--out', join(dir, name)],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

test('a SparsePEFT merge keeps lonas_compression.json', () => {
  merge('kept', '--sparse-adapter');
  assert.equal(readFileSync(join(dir, 'kept', 'lonas_compression.json'), 'utf8'), record);
});

test('a plain LoRA merge that fills the zeros drops the record and says so', () => {
  const log = merge('filled');
  assert.equal(existsSync(join(dir, 'filled', 'lonas_compression.json')), false);
  assert.match(log, /the adapter filled \d+ of the base's \d+ zeros, so .*lonas_compression\.json \(magnitude\) is not carried over/);
});
