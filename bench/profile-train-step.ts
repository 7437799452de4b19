/**
 * Where lonas's train step spends its time (no baseline, so no `ratio`):
 *  - per native kernel call site: the raw addon's exports are wrapped with timers BEFORE the kernel
 *    layer loads them (gemm is keyed by its transposes and m×n×k, which tells forward and backward apart);
 *  - the JS side: V8's sampling profiler (node:inspector, in process), self time per function. V8 lumps
 *    all addon calls under one name; that entry is relabelled "native addon (all kernels)".
 */
import { Rng } from '../src/tensor/index.ts';
import { backendSummary, log, parseOptions, round } from './common.ts';
import { installKernelTimers, jsSelfTimes, kernelTimes, resetKernelTimers } from './kernel-timers.ts';
import { buildModel, measureOurs } from './train-step.ts';

export async function main(args: string[]): Promise<unknown> {
  const opts = parseOptions(args, { rounds: 1, iters: 20, warmup: 3, threads: [1] });
  installKernelTimers();
  const { backend, coreType } = backendSummary();
  const model = buildModel();
  const rng = new Rng(1235);
  const ids = Int32Array.from({ length: 4 * 128 }, () => rng.int(2048));
  const threads = opts.threads[0];
  const n = opts.iters;

  measureOurs(model, ids, threads, opts.warmup, 1);
  resetKernelTimers();
  const s = measureOurs(model, ids, threads, 0, n);
  const stepMs = s.total.reduce((a, b) => a + b, 0) / n;
  const fwdMs = s.fwd.reduce((a, b) => a + b, 0) / n;
  const kernels = kernelTimes(n).map((k) => ({ name: k.name, ms_per_step: k.ms, calls_per_step: k.calls }));
  const nativeMs = kernels.reduce((a, k) => a + k.ms_per_step, 0);
  log(
    `kernels at ${threads} thread(s): ${stepMs.toFixed(1)} ms/step (fwd ${fwdMs.toFixed(1)}, bwd ${(stepMs - fwdMs).toFixed(1)}), ` +
      `native ${nativeMs.toFixed(1)} ms, JS ${(stepMs - nativeMs).toFixed(1)} ms`,
  );
  for (const k of kernels) log(`  ${k.ms_per_step.toFixed(2).padStart(8)} ms  ${String(k.calls_per_step).padStart(4)}×  ${k.name}`);

  const js = (await jsSelfTimes(() => measureOurs(model, ids, threads, 0, n)))
    .slice(0, 15)
    .map(([name, ms]) => ({ name, ms_per_step: round(ms / n, 2) }));
  log('V8 profile, self time per step:');
  for (const t of js) log(`  ${t.ms_per_step.toFixed(2).padStart(8)} ms  ${t.name}`);
  return {
    bench: 'train-step-profile',
    threads,
    ms_per_step: round(stepMs),
    fwd_ms: round(fwdMs),
    native_ms: round(nativeMs),
    js_ms: round(stepMs - nativeMs),
    kernels,
    js_self: js,
    backend,
    coreType,
  };
}
