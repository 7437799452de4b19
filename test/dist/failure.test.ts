/**
 * A rank killed in the middle of `mpirun -np 2 lonas finetune` ends the job non-zero with the last checkpoint
 * intact, and `mpirun … --resume` then produces the adapter of an uninterrupted run (issue 16).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { SKIP_NO_MPI, assertLogsClose, lonas, mpiLonas, mpiLonasAsync, rankPid, relativeDifference, trainLog } from './mpirun.ts';

const STEPS = 40;
const data = () =>
  `${asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json')}:40,${asset('datasets', 'llm-adapters', 'dataset', 'boolq', 'train.json')}:40`;
const args = (out: string, ...extra: string[]) => [
  'finetune',
  '--model',
  STORIES_F32(),
  '--data',
  data(),
  '--out',
  out,
  '--steps',
  String(STEPS),
  '--rank',
  '8',
  '--alpha',
  '16',
  '--batch-size',
  '4',
  '--grad-accum',
  '1',
  '--cutoff-len',
  '64',
  '--seed',
  '9',
  '--sandwich',
  '--checkpoint-every',
  '2',
  ...extra,
];

const checkpointStep = (out: string): number => {
  try {
    return JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).step as number;
  } catch {
    return 0; // not written yet, or being swapped in right now
  }
};

for (const victim of [1, 0]) {
  test(`finetune: killing rank ${victim} of 2 ends the job non-zero, the checkpoint is intact, --resume finishes it as an uninterrupted run`, {
    skip: SKIP_NO_MPI,
  }, async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'lonas-kill-')),
      ref = mkdtempSync(join(tmpdir(), 'lonas-kill-ref-'));
    const job = mpiLonasAsync(2, ...args(out));
    let stderr = '';
    job.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((res) =>
      job.on('exit', (code, signal) => res({ code, signal })),
    );
    const deadline = Date.now() + 120_000;
    while (checkpointStep(out) < 4 && Date.now() < deadline && job.exitCode === null) await sleep(20);
    const pid = rankPid(job.pid!, victim);
    assert.ok(pid, `rank ${victim} found among mpirun's children (stderr: ${stderr})`);
    process.kill(pid, 'SIGKILL');
    const { code, signal } = await exited;
    assert.ok(code !== 0 || signal !== null, 'the job ends with a non-zero status');
    const killedAt = checkpointStep(out);
    assert.ok(killedAt >= 4 && killedAt < STEPS, `killed mid-run (last checkpoint at step ${killedAt} of ${STEPS})`);
    t.diagnostic(`killed after the checkpoint of step ${killedAt}`);
    assert.ok(!existsSync(join(out, 'adapter_model.safetensors')), 'no adapter from an unfinished run');
    const state = new SafetensorsFile(join(out, 'checkpoint', 'state.safetensors'));
    try {
      for (const name of state.entries.keys()) assert.ok(state.readFloat32(name).data.every(Number.isFinite), `${name} readable`);
    } finally {
      state.close();
    }

    const resumed = mpiLonas(2, ...args(out, '--resume'));
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming at step ${killedAt}/${STEPS}`));
    const uninterrupted = lonas(...args(ref));
    assert.equal(uninterrupted.status, 0, uninterrupted.stderr);
    assertLogsClose(trainLog(out), trainLog(ref), 1e-6);
    const d = relativeDifference(join(out, 'adapter_model.safetensors'), join(ref, 'adapter_model.safetensors'));
    t.diagnostic(
      `adapter difference to the uninterrupted 1-process run: ${d.overall.toExponential(2)} overall, worst tensor ${d.worst.rel.toExponential(2)}`,
    );
    assert.ok(d.overall <= 1e-6, `the resumed adapter differs by ${d.overall} relative`);
  });
}
