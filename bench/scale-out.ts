/**
 * `npm run bench -- scale-out`: data-parallel fine-tuning over MPI (issue 16) against one process. The same
 * LoRA steps of the 135M-shape random Llama (bench/scale-out-worker.ts: r 32 on all 7 projections, dropout
 * 0.1, batch 4 × seq 256 by default, the real trainer) run as
 *   - 2x1: `mpirun -np 2`, 1 BLAS thread per rank (each rank 2 of the 4 rows, one fused all-reduce per step),
 *   - 1x1: one process, 1 thread,
 *   - 1x2: one process, 2 threads,
 * each a fresh process per round, the three in a rotating order (interleaved), 1 warm-up step then timed
 * steps. tokens/s = B·T / median step time of a run; reported: the median over rounds and the spread
 * (min–max). Also the all-reduce's bytes and milliseconds per step (the first call, which opens the
 * connections, apart; waiting for the slower rank included) and the same transfer with the ranks lined up. Last stdout line: JSON with `ratio` = 2x1 / 1x1 tokens/s and `vs_two_threads` = 2x1 / 1x2.
 * Also each side's CPU milliseconds per step of one rank outside the all-reduce, and `cpu_ratio` = 1x1 CPU ms per
 * step / 2x1 CPU ms per rank and step: how evenly the work splits over the ranks with the time other jobs on a
 * shared machine take away left out (what the ranks cost each other, caches and memory bandwidth, stays in).
 *
 * The default micro-batch is the recipes' (recipes/*.json: batchSize 4, cutoffLen 256), what users train; at a
 * short --seq 32 each rank re-reads every weight for 64 tokens and the step is bound by weight traffic.
 *
 *   npm run bench -- scale-out [--rounds 3] [--steps 3] [--batch 4] [--seq 256]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, machine, median, round } from './common.ts';
import { takeOption } from './generation.ts';

const WORKER = fileURLToPath(new URL('./scale-out-worker.ts', import.meta.url));
const SIDES = ['2x1', '1x1', '1x2'] as const;
type Side = (typeof SIDES)[number];
/** shared memory between the ranks (vader), TCP on loopback only; root in containers; no core binding (the 1-process sides are not bound either) */
const MPIRUN = [
  '--oversubscribe',
  '--bind-to',
  'none',
  '--mca',
  'btl',
  'self,vader,tcp',
  '--mca',
  'btl_tcp_if_include',
  'lo',
  '--mca',
  'oob_tcp_if_include',
  'lo',
  ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
];

interface WorkerResult {
  ranks: number;
  threads: number;
  tokensPerStep: number;
  stepMs: number[];
  /** per timed step, a rank's CPU ms outside the all-reduce (mean over the ranks) */
  cpuMs: number[];
  allReduce: { bytes: number; msPerStep: number; firstMs: number; syncedMs: number[] } | null;
}

function runSide(side: Side, steps: number, batch: number, seq: number): WorkerResult {
  const args = ['--import', 'tsx', WORKER, mkdtempSync(join(tmpdir(), 'lonas-scale-out-')), String(steps), '1', String(batch), String(seq)];
  const env = { ...process.env, LONAS_THREADS: side === '1x2' ? '2' : '1' };
  const r =
    side === '2x1'
      ? spawnSync('mpirun', [...MPIRUN, '-np', '2', process.execPath, ...args], { encoding: 'utf8', env })
      : spawnSync(process.execPath, args, { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`scale-out ${side} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as WorkerResult;
}

export async function main(argv: string[]): Promise<unknown> {
  let rest = argv;
  const int = (name: string, dflt: number) => {
    const o = takeOption(rest, name);
    rest = o.rest;
    const n = o.value === undefined ? dflt : Number(o.value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a positive integer, got '${o.value}'`);
    return n;
  };
  const rounds = int('--rounds', 3),
    steps = int('--steps', 3),
    batch = int('--batch', 4),
    seq = int('--seq', 256);
  if (rest.length) throw new Error(`unknown option '${rest[0]}' (valid: --rounds N --steps N --batch N --seq N)`);
  if (batch % 2) throw new Error(`--batch ${batch}: the 2-rank side splits the batch, use an even size`);
  if (spawnSync('mpirun', ['--version']).status !== 0)
    throw new Error('mpirun not found: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) and run ./scripts/setup.sh --no-run');
  const before = machine();
  const tps: Record<Side, number[]> = { '2x1': [], '1x1': [], '1x2': [] };
  const cpuStepMs: Record<Side, number[]> = { '2x1': [], '1x1': [], '1x2': [] };
  const reduceMs: number[] = [],
    syncedMs: number[] = [];
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    const order = SIDES.map((_, i) => SIDES[(i + r) % SIDES.length]);
    for (const side of order) {
      const w = runSide(side, steps, batch, seq);
      tps[side].push((w.tokensPerStep / median(w.stepMs)) * 1000);
      cpuStepMs[side].push(median(w.cpuMs));
      if (w.allReduce) {
        reduceMs.push(w.allReduce.msPerStep);
        syncedMs.push(median(w.allReduce.syncedMs));
        bytes = w.allReduce.bytes;
      }
      log(
        `round ${r + 1}/${rounds} ${side}: ${tps[side].at(-1)!.toFixed(1)} tokens/s (steps ${w.stepMs.map((m) => m.toFixed(0)).join(', ')} ms; CPU per rank ${w.cpuMs.map((m) => m.toFixed(0)).join(', ')} ms)` +
          (w.allReduce
            ? `; all-reduce ${w.allReduce.msPerStep.toFixed(1)} ms/step of ${(w.allReduce.bytes / 1e6).toFixed(1)} MB (first ${w.allReduce.firstMs.toFixed(0)} ms; ${median(w.allReduce.syncedMs).toFixed(1)} ms with the ranks lined up)`
            : ''),
      );
    }
  }
  const summary = (xs: number[]) => ({ median: round(median(xs), 2), min: round(Math.min(...xs), 2), max: round(Math.max(...xs), 2) });
  return {
    bench: 'scale-out',
    model: '135M-shape random Llama, LoRA r 32 (7 projections), dropout 0.1',
    batch,
    seq,
    steps,
    rounds,
    tokens_per_s: { ranks2_threads1: summary(tps['2x1']), ranks1_threads1: summary(tps['1x1']), ranks1_threads2: summary(tps['1x2']) },
    allreduce: { bytes_per_step: bytes, ms_per_step: summary(reduceMs), ms_ranks_lined_up: summary(syncedMs) },
    machine: { before, after: machine() },
    cpu_ms_per_step: {
      ranks2_threads1: summary(cpuStepMs['2x1']),
      ranks1_threads1: summary(cpuStepMs['1x1']),
      ranks1_threads2: summary(cpuStepMs['1x2']),
    },
    cpu_ratio: round(median(cpuStepMs['1x1']) / median(cpuStepMs['2x1']), 3),
    vs_two_threads: round(median(tps['2x1']) / median(tps['1x2']), 3),
    ratio: round(median(tps['2x1']) / median(tps['1x1']), 3),
  };
}
