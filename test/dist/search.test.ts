/**
 * `mpirun -np 2 lonas search` equals the 1-process search with the same seed (pareto.json, best.json), and an
 * interrupted distributed search resumes from rank 0's evaluation cache (issue 16).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { SKIP_NO_MPI, lonas, mpiLonas, mpiLonasAsync, rankPid } from './mpirun.ts';

const EVALS = 40;
let adapter = '',
  reference = '';
const search = (out: string) => [
  'search',
  '--model',
  STORIES_F32(),
  '--adapter',
  adapter,
  '--val-size',
  '8',
  '--evals',
  String(EVALS),
  '--population',
  '6',
  '--seed',
  '4',
  '--out',
  out,
];
const outputs = (dir: string) => ({
  pareto: JSON.parse(readFileSync(join(dir, 'pareto.json'), 'utf8')),
  best: JSON.parse(readFileSync(join(dir, 'best.json'), 'utf8')),
  // the evaluations in order, without the `cached` column
  progression: readFileSync(join(dir, 'search_progression.csv'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.slice(0, l.lastIndexOf(','))),
});
const cacheLines = (dir: string) =>
  existsSync(join(dir, 'evaluations.jsonl')) ? readFileSync(join(dir, 'evaluations.jsonl'), 'utf8').split('\n').length - 2 : 0;

before(() => {
  if (SKIP_NO_MPI) return;
  adapter = mkdtempSync(join(tmpdir(), 'lonas-ds-adapter-'));
  const data = `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:30,${asset('datasets', 'llm-adapters', 'dataset', 'boolq', 'train.json')}:30`;
  const ft = lonas(
    'finetune',
    '--model',
    STORIES_F32(),
    '--data',
    data,
    '--out',
    adapter,
    '--steps',
    '8',
    '--rank',
    '8',
    '--alpha',
    '16',
    '--batch-size',
    '4',
    '--grad-accum',
    '1',
    '--lr',
    '2e-3',
    '--cutoff-len',
    '64',
    '--val-size',
    '10',
    '--seed',
    '2',
  );
  assert.equal(ft.status, 0, ft.stderr);
  reference = mkdtempSync(join(tmpdir(), 'lonas-ds-ref-'));
  const r = lonas(...search(reference));
  assert.equal(r.status, 0, r.stderr);
});

test('search: 2 ranks give the pareto.json, best.json and evaluation order of 1 process', { skip: SKIP_NO_MPI }, () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ds-'));
  const r = mpiLonas(2, ...search(out));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /\d+ evaluations \(\d+ measured, 0 from/);
  assert.deepEqual(outputs(out), outputs(reference));
});

test('search: an interrupted 2-rank search resumes from the cache and ends as the 1-process search', { skip: SKIP_NO_MPI }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-ds-kill-'));
  const job = mpiLonasAsync(2, ...search(out));
  const exited = new Promise<{ code: number | null; signal: string | null }>((res) =>
    job.on('exit', (code, signal) => res({ code, signal })),
  );
  const deadline = Date.now() + 120_000;
  while (cacheLines(out) < 10 && Date.now() < deadline && job.exitCode === null) await sleep(20);
  const pid = rankPid(job.pid!, 1);
  assert.ok(pid, "rank 1 found among mpirun's children");
  process.kill(pid, 'SIGKILL');
  const { code, signal } = await exited;
  assert.ok(code !== 0 || signal !== null, 'the job ends with a non-zero status');
  const done = cacheLines(out);
  assert.ok(done >= 10 && !existsSync(join(out, 'pareto.json')), `interrupted mid-search (${done} evaluations cached)`);
  const resumed = mpiLonas(2, ...search(out));
  assert.equal(resumed.status, 0, resumed.stderr);
  const m = resumed.stderr.match(/(\d+) evaluations \((\d+) measured, (\d+) from/);
  assert.ok(m && Number(m[3]) >= 10, `the resumed search takes the cached evaluations: ${m?.[0]}`);
  assert.deepEqual(outputs(out), outputs(reference));
});
