/**
 * Profiling helpers shared by the profile benches and the `--profile` options:
 *  - per-call-site timers on the native addon's kernels: every function export of the raw addon is wrapped
 *    with a timer BEFORE the kernel layer loads it, keyed by kernel and shape (and an optional phase), so a
 *    decode step's time splits into e.g. `gemm NT 1x49152x576` (the LM head), `int4Linear 1x576→1536`
 *    (gate/up) and the JS time between the calls;
 *  - JS self time per function from V8's sampling profiler (node:inspector, in process).
 */
import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import { chooseCoreType, cpuFlags } from '../src/kernels/index.ts';
import { nativeAddonPath } from '../src/kernels/native.ts';
import { nowMs, round } from './common.ts';
export { cpuMs } from './common.ts';

const times = new Map<string, { ms: number; calls: number }>();
let installed = false;
let phase = '';
let clock: () => number = nowMs;

/** Prefixes the keys of the following kernel calls (e.g. "B8 decode"); '' for none. */
export function setKernelPhase(p: string): void {
  phase = p;
}

/** Shape key of one kernel call: gemms by transposes and m×n×k, the compressed kernels by M×inF→outF. */
function shapeKey(name: string, a: unknown[]): string {
  if (name === 'gemm' || name === 'gemmBatched') return `${name} ${a[0] ? 'T' : 'N'}${a[1] ? 'T' : 'N'} ${a[2]}x${a[3]}x${a[4]}`;
  if (name === 'gemmBf16') return `${name} N${a[0] ? 'T' : 'N'} ${a[1]}x${a[2]}x${a[3]}`;
  if (name === 'int4Linear' || name === 'sparseLinear') return `${name} ${a[1]}x${a[2]}→${a[3]}`;
  return name;
}

/**
 * Wraps the addon's exports with timers reading `timer` (wall milliseconds by default; `cpuMs` for CPU time).
 * Must run before anything calls `kernels()` (the kernel layer keeps the functions it found at load time). A
 * no-op on the reference kernels.
 */
export function installKernelTimers(timer: () => number = nowMs): void {
  if (installed || process.env.LONAS_KERNELS === 'reference') return;
  installed = true;
  clock = timer;
  const core = process.env.OPENBLAS_CORETYPE ?? chooseCoreType(cpuFlags()); // as src/kernels/index.ts does
  if (core) process.env.OPENBLAS_CORETYPE = core;
  const addon = createRequire(import.meta.url)(nativeAddonPath()) as Record<string, unknown>;
  for (const [name, fn] of Object.entries(addon)) {
    if (typeof fn !== 'function' || ['coreName', 'config', 'getThreads', 'setThreads', 'compressedIsa', 'compressedThreads'].includes(name))
      continue;
    addon[name] = (...a: unknown[]) => {
      const t0 = clock();
      const r = (fn as (...x: unknown[]) => unknown)(...a);
      const key = phase ? `${phase} ${shapeKey(name, a)}` : shapeKey(name, a);
      const e = times.get(key) ?? { ms: 0, calls: 0 };
      e.ms += clock() - t0;
      e.calls++;
      times.set(key, e);
      return r;
    };
  }
}

export function resetKernelTimers(): void {
  times.clear();
}

/** Kernel time per unit (e.g. per decoded token), largest first. */
export function kernelTimes(units: number): { name: string; ms: number; calls: number }[] {
  return [...times]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([name, e]) => ({ name, ms: round(e.ms / units, 3), calls: round(e.calls / units, 2) }));
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * JS self milliseconds per function while `run` executes, largest first. V8 lumps all addon calls under one
 * nameless entry; it is relabelled "native addon (all kernels)".
 */
export async function jsSelfTimes(run: () => unknown, intervalUs = 100): Promise<[string, number][]> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await session.post('Profiler.start');
  await run();
  const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
  session.disconnect();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const { functionName, url } = byId.get(id)!.callFrame;
    const file = url.replace(/^.*\/(src|bench|node_modules)\//, '$1/');
    const key =
      !url && !functionName.startsWith('(') ? 'native addon (all kernels)' : `${functionName || '(anonymous)'}${file ? ` ${file}` : ''}`;
    ms.set(key, (ms.get(key) ?? 0) + profile.timeDeltas[i] / 1e3);
  });
  return [...ms].sort((a, b) => b[1] - a[1]);
}
