/**
 * `npm run bench -- finetune-step-profile`: where one LoRA fine-tuning step of the scale-out bench's model
 * (bench/scale-out-worker.ts: 135M shape, r 32 on all 7 projections, dropout 0.1) spends its time at several
 * row counts, so the cost that does not shrink with a rank's rows stands out (issue 16). One model and one
 * set of adapters; the row counts take turns step by step (rotating order), after one warm-up step each.
 *  - per phase (forward, loss = cross-entropy over the vocabulary, backward, gradient clipping, AdamW): the
 *    median over the timed steps of wall time and of this process's CPU time (user + system, which other
 *    jobs on a shared machine do not inflate);
 *  - per native kernel call site, CPU time (bench/kernel-timers.ts: gemm keyed by transposes and m×n×k);
 *  - JS self time per function of one more step (V8's sampling profiler, wall time).
 * The step is the trainer's (src/train/trainer.ts) without the log and the all-reduce.
 *
 * `--compute bf16` puts the frozen base's products on the bf16 GEMM (as `lonas finetune --compute bf16`).
 *
 *   npm run bench -- finetune-step-profile [--rows 2,4] [--seq 256] [--steps 2] [--compute f32|bf16]
 *   (threads: LONAS_THREADS, 1 by default)
 */
import { PROJECTIONS } from '../src/models/llama/model.ts';
import { causalLmLoss } from '../src/models/llama/loss.ts';
import { addLora } from '../src/adapters/peft.ts';
import { AdamW } from '../src/train/adamw.ts';
import { clipGradNorm } from '../src/train/grad-clip.ts';
import { Rng, Tensor, backward } from '../src/tensor/index.ts';
import { nativeKernels, setThreads } from '../src/kernels/index.ts';
import { setGemmCompute } from '../src/kernels/compute-mode.ts';
import { backendSummary, log, median, nowMs, round } from './common.ts';
import { cpuMs, installKernelTimers, jsSelfTimes, kernelTimes, setKernelPhase } from './kernel-timers.ts';
import { buildSmolModel, positiveInt, takeOption } from './generation.ts';

const SEED = 1234;
const PHASES = ['forward', 'loss', 'backward', 'clip', 'adamw'] as const;
type Phase = (typeof PHASES)[number];
/** wall and CPU milliseconds of each phase of one step */
type StepTimes = { wall: number[]; cpu: number[] };

/** The model and adapters at sequence length T, and one training step at B rows of random ids. */
function setup(T: number): (B: number) => StepTimes {
  const model = buildSmolModel(SEED, T);
  const loras = addLora(model, { rank: 32, alpha: 64, dropout: 0.1, targets: [...PROJECTIONS] }, SEED);
  const params = loras.flatMap((l) => l.trainable());
  const opt = new AdamW(params, { lr: 1e-4, weightDecay: 0.01 });
  for (const l of loras) l.training = true;
  const rng = new Rng(SEED);
  let s = 0;
  return (B) => {
    const ids = Int32Array.from({ length: B * T }, () => rng.int(model.config.vocabSize));
    for (const l of loras) l.rng = Array.from({ length: B }, (_, b) => rng.derive(`${s}.${b}`));
    s++;
    opt.zeroGrad();
    const marks = [[nowMs(), cpuMs()]];
    const mark = () => marks.push([nowMs(), cpuMs()]);
    const logits = model.forward(ids, B, T);
    mark();
    const loss = causalLmLoss(logits, ids);
    loss.item();
    mark();
    backward(loss, new Tensor(Float32Array.of(1), []));
    mark();
    clipGradNorm(params, 1);
    mark();
    opt.update();
    mark();
    const diff = (k: number) => marks.slice(1).map((m, i) => m[k] - marks[i][k]);
    return { wall: diff(0), cpu: diff(1) };
  };
}

export async function main(argv: string[]): Promise<unknown> {
  let rest = argv;
  const take = (name: string) => {
    const o = takeOption(rest, name);
    rest = o.rest;
    return o.value;
  };
  const rows = (take('--rows') ?? '2,4').split(',').map((s) => positiveInt('--rows', s, 0));
  const T = positiveInt('--seq', take('--seq'), 256),
    steps = positiveInt('--steps', take('--steps'), 2);
  const compute = take('--compute') ?? 'f32';
  if (compute !== 'f32' && compute !== 'bf16') throw new Error(`--compute must be f32 or bf16, got '${compute}'`);
  if (rest.length) throw new Error(`unknown option '${rest[0]}' (valid: --rows 2,4 --seq N --steps N --compute f32|bf16)`);
  setGemmCompute(compute);
  installKernelTimers(cpuMs);
  nativeKernels()?.retainFreedMemory(); // as `lonas finetune` does when the estimate is under half the limit
  const threads = Number(process.env.LONAS_THREADS ?? 1);
  setThreads(threads);
  const step = setup(T);
  const times = new Map<number, StepTimes[]>(rows.map((B) => [B, []]));
  for (let r = -1; r < steps; r++) {
    for (const B of rows.map((_, i) => rows[(i + Math.max(r, 0)) % rows.length])) {
      setKernelPhase(r < 0 ? 'warm-up' : `${B} rows`);
      const t = step(B);
      if (r >= 0) times.get(B)!.push(t);
      log(
        `step ${r + 1}/${steps} at ${B} rows: ${t.wall.reduce((a, b) => a + b).toFixed(0)} ms wall, ${t.cpu.reduce((a, b) => a + b).toFixed(0)} ms CPU`,
      );
    }
  }
  setKernelPhase('');
  const kernels = kernelTimes(steps).filter((k) => !k.name.startsWith('warm-up'));
  const byRows: Record<string, unknown> = {};
  for (const B of rows) {
    const per = (k: 'wall' | 'cpu') =>
      Object.fromEntries(PHASES.map((p, i) => [p, round(median(times.get(B)!.map((t) => t[k][i])), 1)])) as Record<Phase, number>;
    const wall = per('wall'),
      cpu = per('cpu');
    const mine = kernels.filter((k) => k.name.startsWith(`${B} rows `)).map((k) => ({ ...k, name: k.name.slice(`${B} rows `.length) }));
    const nativeMs = mine.reduce((s, k) => s + k.ms, 0);
    const cpuStep = PHASES.reduce((s, p) => s + cpu[p], 0);
    log(
      `${B} rows × ${T}, ${threads} thread(s): ${PHASES.reduce((s, p) => s + wall[p], 0).toFixed(0)} ms wall, ${cpuStep.toFixed(0)} ms CPU ` +
        `(native ${nativeMs.toFixed(0)}, the rest ${(cpuStep - nativeMs).toFixed(0)}); CPU ${PHASES.map((p) => `${p} ${cpu[p].toFixed(0)}`).join(', ')}`,
    );
    for (const k of mine.slice(0, 25)) log(`  ${k.ms.toFixed(1).padStart(9)} ms  ${String(k.calls).padStart(5)}×  ${k.name}`);
    const js = (await jsSelfTimes(() => step(B))).slice(0, 15).map(([name, t]) => ({ name, ms: round(t, 1) }));
    log('  V8 self time (wall) of one more step:');
    for (const t of js) log(`  ${t.ms.toFixed(1).padStart(9)} ms  ${t.name}`);
    byRows[B] = { wall_ms: wall, cpu_ms: cpu, native_cpu_ms: round(nativeMs, 1), kernels_cpu: mine, js_self: js };
  }
  return { bench: 'finetune-step-profile', seq: T, steps, threads, compute, rows: byRows, ...backendSummary() };
}
