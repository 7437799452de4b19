/** The recipe runner's `mpi` launch prefix: the fine-tuning and search stages run under mpirun (issue 16). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecipe } from '../../src/pipeline/recipe.ts';
import { stages } from '../../src/pipeline/stages.ts';
import { runRecipe } from '../../src/pipeline/runner.ts';
import { writeStageRecord } from '../../src/io/artifacts.ts';
import { BIN, SKIP_NO_MPI } from './mpirun.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MPI = 'mpirun --allow-run-as-root --oversubscribe -np 2 --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo';

/** recipes/lonas.json with tiny budgets (as test/pipeline/recipes-e2e.test.ts) and no baseline */
// biome-ignore lint/suspicious/noExplicitAny: a recipe edited freely by the test
function tinyLonas(mpi: unknown): Record<string, any> {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lonas.json'), 'utf8'));
  r.mpi = mpi;
  r.baseline = false;
  r.data.train = r.data.train.map((t: string) => `${t.replace(/:\d+$/, '')}:40`).slice(0, 2);
  r.data.valSize = 8;
  r.data.tasks = r.data.tasks.slice(0, 1);
  r.finetune = { ...r.finetune, steps: 4, rank: 4, alpha: 8, cutoffLen: 64, gradAccum: 1, batchSize: 4 };
  delete r.finetune.epochs;
  r.search = { ...r.search, evals: 4, population: 4, mode: 'loss', limit: 8 };
  r.eval = { ...r.eval, beams: 1, limit: 3, maxNewTokens: 8 };
  r.bench = { promptLen: 16, genLen: 4, repeats: 1 };
  return r;
}

test('recipe field "mpi" must be a launch command', () => {
  assert.throws(
    () => parseRecipe(tinyLonas(' '), 'my.json', ROOT),
    /my.json: invalid recipe: field "mpi": a launch command such as "mpirun -np 2"/,
  );
  assert.deepEqual(
    stages(parseRecipe(tinyLonas(MPI), 'my.json', ROOT)).map((s) => s.name),
    stages(parseRecipe(tinyLonas(undefined), 'my.json', ROOT)).map((s) => s.name),
  );
});

test('a recipe with "mpi" runs fine-tuning and search under mpirun, the other stages as one process', { skip: SKIP_NO_MPI }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-recipe-mpi-'));
  writeFileSync(join(dir, 'recipe.json'), JSON.stringify(tinyLonas(MPI)));
  const r = spawnSync(process.execPath, [BIN, 'run', join(dir, 'recipe.json'), '--out', join(dir, 'run')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  assert.match(r.stderr, /\$ mpirun .* -np 2 .*lonas finetune /);
  assert.match(r.stderr, /\$ mpirun .* -np 2 .*lonas search /);
  assert.match(r.stderr, /\$ lonas extract /);
  assert.equal(JSON.parse(readFileSync(join(dir, 'run', 'adapter', 'run_config.json'), 'utf8')).world_size, 2);
  assert.ok(JSON.parse(readFileSync(join(dir, 'run', 'search', 'best.json'), 'utf8')).config, 'the search wrote best.json');
});

test('lonas run --mpi sets the launch prefix, and a run resumes under another launch (not under another recipe)', async () => {
  const withFlag = parseRecipe(tinyLonas(undefined), 'my.json', ROOT, { mpi: MPI });
  assert.equal(withFlag.mpi, MPI);
  assert.equal(parseRecipe(tinyLonas('mpirun -np 4'), 'my.json', ROOT, { mpi: MPI }).mpi, MPI, 'the flag wins over the recipe');
  // a finished run: every stage has its record, so resuming runs nothing
  const out = mkdtempSync(join(tmpdir(), 'lonas-recipe-launch-'));
  mkdirSync(join(out, 'stages'));
  const first = parseRecipe(tinyLonas(MPI), 'my.json', ROOT, { out });
  writeFileSync(join(out, 'recipe.json'), `${JSON.stringify(first, null, 2)}\n`);
  for (const s of stages(first))
    writeStageRecord(out, { name: s.name, seconds: 0, outputs: s.outputs, finishedAt: new Date().toISOString() });
  const quiet = { log: () => {}, report: async () => {} };
  await runRecipe(parseRecipe(tinyLonas(undefined), 'my.json', ROOT, { out }), quiet); // one process now: same computation
  const otherRank = tinyLonas(undefined);
  otherRank.finetune.rank = 8;
  await assert.rejects(runRecipe(parseRecipe(otherRank, 'my.json', ROOT, { out }), quiet), /holds a run of a different recipe/);
});
