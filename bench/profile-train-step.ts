/**
 * Where lonas's train step spends its time (no baseline, so no `ratio`):
 *  - per native kernel call site: the raw addon's exports are wrapped with timers BEFORE the kernel
 *    layer loads them (gemm is keyed by its transposes and m×n×k, which tells forward and backward apart);
 *  - the JS side: V8's sampling profiler (node:inspector, in process), self time per function. V8 lumps
 *    all addon calls under one name; that entry is relabelled "native addon (all kernels)".
 */
import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import { Rng } from '../src/tensor/index.ts';
import { chooseCoreType, cpuFlags } from '../src/kernels/index.ts';
import { nativeAddonPath } from '../src/kernels/native.ts';
import { backendSummary, log, nowMs, parseOptions, round } from './common.ts';
import { buildModel, measureOurs } from './train-step.ts';

const kernelMs = new Map<string, { ms: number; calls: number }>();

/** Wraps every function export of the addon with a timer (must run before kernels() loads it). */
function instrumentAddon(): void {
  if (process.env.LONAS_KERNELS === 'reference') return;
  const core = process.env.OPENBLAS_CORETYPE ?? chooseCoreType(cpuFlags()); // as src/kernels/index.ts does
  if (core) process.env.OPENBLAS_CORETYPE = core;
  const addon = createRequire(import.meta.url)(nativeAddonPath()) as Record<string, unknown>;
  for (const [name, fn] of Object.entries(addon)) {
    if (typeof fn !== 'function' || ['coreName', 'config', 'getThreads', 'setThreads'].includes(name)) continue;
    addon[name] = (...a: unknown[]) => {
      const key = name.startsWith('gemm') ? `${name} ${a[0] ? 'T' : 'N'}${a[1] ? 'T' : 'N'} ${a[2]}x${a[3]}x${a[4]}` : name;
      const t0 = nowMs();
      const r = (fn as (...x: unknown[]) => unknown)(...a);
      const e = kernelMs.get(key) ?? { ms: 0, calls: 0 };
      e.ms += nowMs() - t0;
      e.calls++;
      kernelMs.set(key, e);
      return r;
    };
  }
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string } }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** Self milliseconds per JS function, largest first. */
function selfTimes(p: Profile): [string, number][] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const { functionName, url } = byId.get(id)!.callFrame;
    const file = url.replace(/^.*\/(src|bench|node_modules)\//, '$1/');
    const key = !url && !functionName.startsWith('(') ? 'native addon (all kernels)' : `${functionName || '(anonymous)'}${file ? ` ${file}` : ''}`;
    ms.set(key, (ms.get(key) ?? 0) + p.timeDeltas[i] / 1e3);
  });
  return [...ms].sort((a, b) => b[1] - a[1]);
}

export async function main(args: string[]): Promise<unknown> {
  const opts = parseOptions(args, { rounds: 1, iters: 20, warmup: 3, threads: [1] });
  instrumentAddon();
  const { backend, coreType } = backendSummary();
  const model = buildModel();
  const rng = new Rng(1235);
  const ids = Int32Array.from({ length: 4 * 128 }, () => rng.int(2048));
  const threads = opts.threads[0];
  const n = opts.iters;

  measureOurs(model, ids, threads, opts.warmup, 1);
  kernelMs.clear();
  const s = measureOurs(model, ids, threads, 0, n);
  const stepMs = s.total.reduce((a, b) => a + b, 0) / n;
  const fwdMs = s.fwd.reduce((a, b) => a + b, 0) / n;
  const kernels = [...kernelMs].sort((a, b) => b[1].ms - a[1].ms)
    .map(([name, e]) => ({ name, ms_per_step: round(e.ms / n, 2), calls_per_step: e.calls / n }));
  const nativeMs = kernels.reduce((a, k) => a + k.ms_per_step, 0);
  log(`kernels at ${threads} thread(s): ${stepMs.toFixed(1)} ms/step (fwd ${fwdMs.toFixed(1)}, bwd ${(stepMs - fwdMs).toFixed(1)}), ` +
    `native ${nativeMs.toFixed(1)} ms, JS ${(stepMs - nativeMs).toFixed(1)} ms`);
  for (const k of kernels) log(`  ${k.ms_per_step.toFixed(2).padStart(8)} ms  ${String(k.calls_per_step).padStart(4)}×  ${k.name}`);

  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  measureOurs(model, ids, threads, 0, n);
  const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
  session.disconnect();
  const js = selfTimes(profile).slice(0, 15).map(([name, ms]) => ({ name, ms_per_step: round(ms / n, 2) }));
  log('V8 profile, self time per step:');
  for (const t of js) log(`  ${t.ms_per_step.toFixed(2).padStart(8)} ms  ${t.name}`);
  return {
    bench: 'train-step-profile', threads, ms_per_step: round(stepMs), fwd_ms: round(fwdMs), native_ms: round(nativeMs),
    js_ms: round(stepMs - nativeMs), kernels, js_self: js, backend, coreType,
  };
}
