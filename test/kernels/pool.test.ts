/**
 * The worker pool's claim protocol (native/pool.cc) under widened race windows: the addon's poolSelfTest runs
 * jobs of alternating small and large chunk counts with every worker pausing between reading the ticket and
 * claiming from it, and the caller pausing between writing a job's chunk count and publishing the job. Every
 * piece must run exactly once. The stale-claim bug fixed in 80fb11a (a worker claiming a piece of the next job
 * under the finished one's ticket) fails this at once: pieces run twice and the caller waits for good, so the
 * test runs in a child process with a timeout.
 *
 * Run: node --import tsx --test test/kernels/pool.test.ts   (build the addon first: npm run build:native)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { nativeAddonPath } from '../../src/kernels/native.ts';

function selfTest(jobs: number, delayUs: number): { status: number | null; signal: string | null; out: string; err: string } {
  const addon = nativeAddonPath();
  assert.ok(existsSync(addon), `native addon not built (${addon} is missing): run \`npm run build:native\``);
  const script = `const a = require(${JSON.stringify(addon)}); a.setThreads(2); process.stdout.write(String(a.poolSelfTest(${jobs}, ${delayUs})));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

test('every piece of every job runs exactly once with the race windows widened (2 threads)', () => {
  const r = selfTest(1500, 20);
  assert.equal(r.signal, null, `the pool hung (killed after 30 s): ${r.err}`);
  assert.equal(r.status, 0, r.err);
  assert.equal(r.out, '0', 'pieces that did not run exactly once');
});

test('and with no delay (the protocol as it runs in production)', () => {
  const r = selfTest(20000, 0);
  assert.equal(r.signal, null, `the pool hung (killed after 30 s): ${r.err}`);
  assert.equal(r.out, '0', 'pieces that did not run exactly once');
});
