/**
 * Running lonas under `mpirun -np 2` on loopback for the test/dist tests, and comparing two runs' outputs.
 * The tests skip (with this message) only when mpirun is not installed; scripts/test.sh installs OpenMPI.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, SpawnSyncReturns } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors.ts';

export const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const hasMpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
export const SKIP_NO_MPI = hasMpirun
  ? false
  : 'mpirun not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev, as scripts/test.sh does)';

/** as root in a container, on loopback only, more ranks than cores allowed */
const MPIRUN_ARGS = [
  '--allow-run-as-root',
  '--oversubscribe',
  '--mca',
  'btl',
  'self,tcp',
  '--mca',
  'btl_tcp_if_include',
  'lo',
  '--mca',
  'oob_tcp_if_include',
  'lo',
];
const ENV = { ...process.env, LONAS_THREADS: '1' };

export const lonas = (...args: string[]): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: ENV });
export const mpiLonas = (np: number, ...args: string[]): SpawnSyncReturns<string> =>
  spawnSync('mpirun', [...MPIRUN_ARGS, '-np', String(np), process.execPath, BIN, ...args], { encoding: 'utf8', env: ENV });
export const mpiLonasAsync = (np: number, ...args: string[]): ChildProcess =>
  spawn('mpirun', [...MPIRUN_ARGS, '-np', String(np), process.execPath, BIN, ...args], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });

/** pid of the process that mpirun started as `rank` (a direct child on this machine) */
export function rankPid(mpirunPid: number, rank: number): number | null {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(join('/proc', pid, 'stat'), 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== mpirunPid) continue;
      if (
        readFileSync(join('/proc', pid, 'environ'), 'utf8')
          .split('\0')
          .includes(`OMPI_COMM_WORLD_RANK=${rank}`)
      )
        return Number(pid);
    } catch {
      /* the process ended meanwhile */
    }
  }
  return null;
}

/**
 * ‖a − b‖ / ‖b‖ over two safetensors files holding the same names: over all their values as one vector
 * (`overall`), and the largest per tensor (`worst`).
 */
export function relativeDifference(fileA: string, fileB: string): { overall: number; worst: { name: string; rel: number } } {
  const a = new SafetensorsFile(fileA),
    b = new SafetensorsFile(fileB);
  try {
    if ([...a.entries.keys()].sort().join() !== [...b.entries.keys()].sort().join())
      throw new Error(`${fileA} and ${fileB} hold different tensors`);
    let worst = { name: '', rel: 0 },
      dAll = 0,
      nAll = 0;
    for (const name of a.entries.keys()) {
      const x = a.readFloat32(name).data,
        y = b.readFloat32(name).data;
      let d = 0,
        n = 0;
      for (let i = 0; i < x.length; i++) {
        d += (x[i] - y[i]) ** 2;
        n += y[i] ** 2;
      }
      const rel = n === 0 ? Math.sqrt(d) : Math.sqrt(d / n);
      if (rel > worst.rel) worst = { name, rel };
      dAll += d;
      nAll += n;
    }
    return { overall: Math.sqrt(dAll / nAll), worst };
  } finally {
    a.close();
    b.close();
  }
}

/** the step and eval lines of a train_log.jsonl */
export const trainLog = (dir: string): { type: string; step: number; loss?: number; val_loss?: number }[] =>
  readFileSync(join(dir, 'train_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

/** a, b equal up to `tol` relative in every loss of the two logs */
export function assertLogsClose(a: ReturnType<typeof trainLog>, b: ReturnType<typeof trainLog>, tol: number): void {
  if (a.length !== b.length) throw new Error(`logs differ in length: ${a.length} vs ${b.length}`);
  a.forEach((x, i) => {
    const y = b[i];
    const u = x.loss ?? x.val_loss!,
      v = y.loss ?? y.val_loss!;
    if (x.type !== y.type || x.step !== y.step || !(Math.abs(u - v) <= tol * Math.abs(v))) {
      throw new Error(`log line ${i + 1} differs: ${JSON.stringify(x).slice(0, 120)} vs ${JSON.stringify(y).slice(0, 120)}`);
    }
  });
}
