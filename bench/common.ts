/**
 * Shared helpers of the benchmarks: options, timing statistics, progress output and the PyTorch
 * baseline run as a child process with the same BLAS settings as lonas (architecture.md, "Tests that
 * prove numbers": a baseline must be its best self).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { backendInfo, kernels } from '../src/kernels/index.ts';
import { full } from '../src/tensor/index.ts';
import type { Rng, Tensor } from '../src/tensor/index.ts';
import { randomNormal } from '../src/nn/modules.ts';
import type { LlamaConfig } from '../src/models/llama/config.ts';
import { llamaWeightTable } from '../src/models/llama/weights.ts';

export const PYTHON = process.env.LONAS_BENCH_PYTHON ?? '/usr/bin/python3';

export interface BenchOptions {
  /** rounds; each round measures ours then torch (order alternating between rounds) */
  rounds: number;
  /** timed iterations per side and round (after the warm-ups) */
  iters: number;
  warmup: number;
  threads: number[];
}

/** Parses `--rounds N --iters N --warmup N --threads 1,2` with the given defaults. */
export function parseOptions(args: string[], defaults: BenchOptions): BenchOptions {
  const o = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const key = args[i],
      value = args[i + 1];
    const int = (s: string | undefined): number => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${key} needs a non-negative integer, got '${s}'`);
      return n;
    };
    if (key === '--rounds') o.rounds = Math.max(1, int(value));
    else if (key === '--iters') o.iters = Math.max(1, int(value));
    else if (key === '--warmup') o.warmup = int(value);
    else if (key === '--threads') o.threads = (value ?? '').split(',').map((s) => Math.max(1, int(s)));
    else throw new Error(`unknown option '${key}' (valid: --rounds N --iters N --warmup N --threads 1,2)`);
    i++;
  }
  return o;
}

export function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function min(xs: number[]): number {
  return Math.min(...xs);
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function nowMs(): number {
  return performance.now();
}

/** Milliseconds of CPU this process has used (user + system, all threads): unlike wall time, not inflated while other jobs hold the CPU. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Loads the kernels (which fixes OPENBLAS_CORETYPE before OpenBLAS loads) and describes the backend. */
export function backendSummary(): { backend: string; coreType: string | undefined } {
  kernels();
  const info = backendInfo();
  if (info.backend !== 'native' && !process.env.LONAS_BENCH_ALLOW_REFERENCE) {
    throw new Error(
      `lonas runs on the ${info.backend} kernels (${info.reason ?? ''}): the figures would mean nothing. ` +
        'Build the addon (npm run build:native), or set LONAS_BENCH_ALLOW_REFERENCE=1 to run anyway.',
    );
  }
  return { backend: info.backend, coreType: process.env.OPENBLAS_CORETYPE ?? info.coreType };
}

/** Environment for a PyTorch child at `threads` threads, sharing lonas's OpenBLAS core type. */
export function torchEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.OMP_WAIT_POLICY;
  const { coreType } = backendSummary();
  if (coreType) env.OPENBLAS_CORETYPE = coreType;
  env.OPENBLAS_NUM_THREADS = String(threads);
  env.OMP_NUM_THREADS = String(threads);
  // Without it OpenMP threads spin while OpenBLAS works and torch collapses ~3× at 2 threads.
  if (threads > 1) env.OMP_WAIT_POLICY = 'PASSIVE';
  return env;
}

/** A missing prerequisite of a benchmark: reported as its message alone, without a stack trace. */
export class BenchSetupError extends Error {
  override name = 'BenchSetupError';
}

/** Runs bench/torch/<script> with `args` at `threads` threads and parses its last stdout line as JSON. */
export function runTorch<T>(script: string, threads: number, args: string[]): T {
  const path = fileURLToPath(new URL(`./torch/${script}`, import.meta.url));
  const r = spawnSync(PYTHON, [path, '--threads', String(threads), ...args], {
    env: torchEnv(threads),
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  if (r.error) throw new Error(`cannot run ${PYTHON} ${script}: ${r.error.message}`);
  if (r.status !== 0 && /No module named 'torch'/.test(r.stderr))
    throw new BenchSetupError(
      `this benchmark's baseline is PyTorch, which ${PYTHON} cannot import: install it with \`apt-get install python3-torch\``,
    );
  if (r.status !== 0) throw new Error(`${script} exited with ${r.status}:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** CPUs and the 1-minute load average (a slow, decaying indicator; see `machineBusy` for a direct one). */
export function machine(): { cpus: number; load1: number } {
  return { cpus: cpus().length, load1: round(loadavg()[0], 2) };
}

/**
 * `machine()` plus the share of all CPU time used by other processes over one idle second before a run
 * (ours sleeps meanwhile). Well above 0 means the figures compete with other work.
 */
export async function machineBusy(): Promise<{ cpus: number; load1: number; busy_pct_before: number }> {
  const total = () =>
    cpus().reduce(
      (acc, c) => {
        const t = c.times;
        return { busy: acc.busy + t.user + t.nice + t.sys + t.irq, all: acc.all + t.user + t.nice + t.sys + t.irq + t.idle };
      },
      { busy: 0, all: 0 },
    );
  const a = total();
  await new Promise((r) => setTimeout(r, 1000));
  const b = total();
  return { ...machine(), busy_pct_before: round((100 * (b.busy - a.busy)) / Math.max(b.all - a.all, 1), 1) };
}

/** Random weights of a Llama with this config: norms 1, every other tensor N(0, std), drawn in weight-table order. */
export function randomLlamaWeights(config: LlamaConfig, rng: Rng, std: number): Map<string, Tensor> {
  const w = new Map<string, Tensor>();
  for (const { name, shape } of llamaWeightTable(config).all)
    w.set(name, name.endsWith('norm.weight') ? full(shape, 1) : randomNormal(rng, shape, std));
  return w;
}
