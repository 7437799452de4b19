/**
 * Where batched generation spends its time (lonas only, no `ratio`): the eval harness's greedy generation
 * on the 135M-shape random model (bench/eval.ts) at batch 1 and at batch B, split into
 *  - prefill vs decode (forwardCached calls with seq > 1 vs seq = 1), wall time;
 *  - per native kernel call site (the raw addon's exports wrapped with timers before the kernel layer loads
 *    them; gemm keyed by transposes and m×n×k, so prefill, decode projections, attention and LM head differ);
 *  - JS self time (V8 sampling profiler) of the decode part.
 * Options: --examples N (8) --batch B (8) --config generate32|generate256 (generate32) --threads N (1) --skip-batch1.
 */
import { join } from 'node:path';
import { setThreads } from '../src/kernels/index.ts';
import { LlamaModel } from '../src/models/llama/model.ts';
import { loadTokenizer } from '../src/io/tokenizer.ts';
import { modelBackend } from '../src/eval/backend.ts';
import { runEval } from '../src/eval/harness.ts';
import { loadTasks } from '../src/eval/tasks.ts';
import { backendSummary, log, nowMs, round } from './common.ts';
import { ASSETS, CONFIGS, fitting, model135m } from './eval.ts';
import { installKernelTimers, jsSelfTimes, kernelTimes, resetKernelTimers, setKernelPhase } from './kernel-timers.ts';

export async function main(args: string[]): Promise<unknown> {
  const o = { examples: 8, batch: 8, config: 'generate32' as keyof typeof CONFIGS, threads: 1, skipBatch1: false };
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === '--examples') o.examples = Number(args[i + 1]);
    else if (args[i] === '--batch') o.batch = Number(args[i + 1]);
    else if (args[i] === '--config') o.config = args[i + 1] as keyof typeof CONFIGS;
    else if (args[i] === '--threads') o.threads = Number(args[i + 1]);
    else if (args[i] === '--skip-batch1') {
      o.skipBatch1 = true;
      i--;
    } else throw new Error(`unknown option ${args[i]} (--examples N --batch B --config generate32|generate256 --threads N --skip-batch1)`);
  }
  installKernelTimers();
  setKernelPhase('other');
  backendSummary();
  setThreads(o.threads);
  const model = model135m();
  const tok = loadTokenizer(join(ASSETS, 'tokenizers', 'llama2-hf-generated'));
  const cfg = CONFIGS[o.config];
  const [task0] = loadTasks([cfg.task], join(ASSETS, 'datasets', 'llm-adapters', 'dataset'));
  const task = fitting(task0, tok, model, cfg.maxNewTokens, o.examples);
  // phase tagging: wrap forwardCached
  const phaseMs = new Map<string, number>();
  const orig = LlamaModel.prototype.forwardCached;
  LlamaModel.prototype.forwardCached = function (this: LlamaModel, ...a: Parameters<typeof orig>) {
    const phase = `B${a[1]} ${a[2] > 1 ? 'prefill' : 'decode'}`;
    setKernelPhase(phase);
    const t0 = nowMs();
    try {
      return orig.apply(this, a);
    } finally {
      phaseMs.set(phase, (phaseMs.get(phase) ?? 0) + nowMs() - t0);
      setKernelPhase('other');
    }
  };
  const backend = modelBackend(model, tok);
  const runOnce = (batchSize: number) => runEval(backend, [task], { mode: 'generate', batchSize, maxNewTokens: cfg.maxNewTokens });
  await runEval(backend, [{ ...task, examples: task.examples.slice(0, 2) }], { mode: 'generate', batchSize: 2, maxNewTokens: 4 });
  resetKernelTimers();
  phaseMs.clear();
  const result: Record<string, unknown> = { bench: 'generate-profile', ...o };
  for (const b of o.skipBatch1 ? [o.batch] : [1, o.batch]) {
    resetKernelTimers();
    phaseMs.clear();
    const t0 = nowMs();
    await runOnce(b);
    const total = nowMs() - t0;
    const phases = Object.fromEntries([...phaseMs].map(([k, v]) => [k, round(v, 1)]));
    const all = kernelTimes(1);
    const kernels = all.slice(0, 400).map((k) => ({ ...k, ms: round(k.ms, 1) }));
    const nativeByPhase: Record<string, number> = {};
    for (const k of all) {
      const p = k.name.split(' ').slice(0, 2).join(' ');
      nativeByPhase[p] = round((nativeByPhase[p] ?? 0) + k.ms, 1);
    }
    log(
      `batch ${b}: total ${total.toFixed(0)} ms (${((o.examples / total) * 1000).toFixed(3)} ex/s); phases ${JSON.stringify(phases)}; native by phase ${JSON.stringify(nativeByPhase)}`,
    );
    for (const k of kernels.slice(0, 25)) log(`  ${k.ms.toFixed(1).padStart(9)} ms ${String(k.calls).padStart(6)}×  ${k.name}`);
    result[`batch${b}`] = { total_ms: round(total, 1), phases, native_by_phase: nativeByPhase, kernels };
  }
  // JS self time of the batched run
  const js = (await jsSelfTimes(() => runOnce(o.batch), 200)).slice(0, 20).map(([name, ms]) => ({ name, ms: round(ms, 1) }));
  log(`V8 self time, batch ${o.batch}:`);
  for (const t of js) log(`  ${t.ms.toFixed(1).padStart(9)} ms  ${t.name}`);
  result.js_self = js;
  return result;
}

if (process.argv[1]?.endsWith('profile-generate.ts')) {
  main(process.argv.slice(2)).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
