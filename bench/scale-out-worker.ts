/**
 * One side of `npm run bench -- scale-out` (bench/scale-out.ts starts it, alone or under mpirun): LoRA
 * fine-tuning steps of the 135M-shape random Llama through the real trainer (src/train/trainer.ts, so under
 * mpirun the real data-parallel path: row shards, one fused all-reduce per step). Plain LoRA r 32 on all 7
 * projections, dropout 0.1, batch B × seq T of random token ids, gradient accumulation 1. Rank 0 prints one
 * JSON line: the step times after the warm-up steps and the all-reduce figures. The trainer's all-reduce time
 * includes waiting for the slower rank; afterwards the same buffer size is all-reduced 5 times right after a
 * 1-float all-reduce that lines the ranks up (`syncedMs`: the transfer alone). `cpuMs`: per timed step, the CPU
 * milliseconds of a rank's process (all its threads) outside the all-reduce (whose wait spins), the mean over the
 * ranks: what a step costs when descheduling by other jobs on a shared machine is left out.
 *
 *   node --import tsx bench/scale-out-worker.ts OUT_DIR STEPS WARMUP BATCH SEQ   (threads: LONAS_THREADS)
 */
import { rmSync } from 'node:fs';
import { Rng } from '../src/tensor/index.ts';
import { PROJECTIONS } from '../src/models/llama/model.ts';
import { addLora } from '../src/adapters/peft.ts';
import { PRESETS, resolveSearchSpace } from '../src/nas/search-space.ts';
import { train } from '../src/train/trainer.ts';
import type { Batch } from '../src/io/batches.ts';
import { world } from '../src/dist/mpi.ts';
import { backendInfo } from '../src/kernels/index.ts';
import { buildSmolModel } from './generation.ts';
import { cpuMs } from './common.ts';
import type { World } from '../src/dist/mpi.ts';

const SEED = 1234;
const [outDir, stepsArg, warmupArg, batchArg, seqArg] = process.argv.slice(2);
const steps = Number(stepsArg),
  warmup = Number(warmupArg),
  B = Number(batchArg),
  T = Number(seqArg);
const w = world();
const model = buildSmolModel(SEED, T);
const lora = { rank: 32, alpha: 64, dropout: 0.1, targets: [...PROJECTIONS] };
const loras = addLora(model, lora, SEED);
const space = resolveSearchSpace(PRESETS.none, model.config, lora.rank, lora.targets);

// random token ids, every row a full sequence (labels = inputs), one batch per step
const rng = new Rng(SEED);
const batches: Batch[] = Array.from({ length: warmup + steps }, (_, i) => {
  const ids = Int32Array.from({ length: B * T }, () => rng.int(model.config.vocabSize));
  return {
    inputIds: ids,
    labels: ids.slice(),
    B,
    T,
    lengths: new Array(B).fill(T),
    realTokens: B * T,
    lossTokens: B * (T - 1),
    indices: Array.from({ length: B }, (_, b) => i * B + b),
  };
});

// step boundaries in CPU time outside the all-reduce: the step event (one process) or the start of the one
// gradient all-reduce per step (every rank; events reach rank 0 only)
const stepEnds: number[] = [],
  cpuMarks: number[] = [];
let reduceCpu = 0;
const timedWorld: World = {
  rank: w.rank,
  size: w.size,
  bcast: (buf, root) => w.bcast(buf, root),
  allreduceSum: (buf) => {
    const c0 = cpuMs();
    cpuMarks.push(c0 - reduceCpu);
    w.allreduceSum(buf);
    reduceCpu += cpuMs() - c0;
  },
};
const result = train(
  model,
  loras,
  space,
  () => batches,
  [],
  {
    outDir,
    steps: warmup + steps,
    epochs: 1,
    gradAccum: 1,
    lr: 1e-4,
    warmup: 0,
    weightDecay: 0.01,
    maxGradNorm: 1,
    seed: SEED,
    checkpointEvery: 1e9,
    evalEvery: 0,
    sandwich: false,
    resume: false,
    settingsKey: 'bench',
  },
  (e) => {
    if (e.type !== 'step') return;
    stepEnds.push(performance.now());
    if (w.size === 1) cpuMarks.push(cpuMs());
  },
  timedWorld,
);
const syncedMs: number[] = [];
if (result.allReduce) {
  const buf = new Float32Array(result.allReduce.bytes / 4);
  for (let i = 0; i < 5; i++) {
    w.allreduceSum(new Float32Array(1));
    const t0 = performance.now();
    w.allreduceSum(buf);
    syncedMs.push(performance.now() - t0);
  }
}
// the mean over the ranks of each timed step's CPU milliseconds
const cpuPerStep = Float64Array.from({ length: steps }, (_, i) => cpuMarks[warmup + i] - cpuMarks[warmup - 1 + i]);
w.allreduceSum(cpuPerStep);
if (w.rank === 0) {
  rmSync(outDir, { recursive: true, force: true });
  const stepMs = stepEnds.slice(warmup).map((t, i) => t - stepEnds[warmup - 1 + i]);
  const a = result.allReduce;
  process.stdout.write(
    `${JSON.stringify({
      ranks: w.size,
      threads: backendInfo().threads,
      tokensPerStep: B * T,
      stepMs,
      cpuMs: Array.from(cpuPerStep, (c) => c / w.size),
      allReduce: a && a.calls > 1 ? { bytes: a.bytes, msPerStep: (a.ms - a.firstMs) / (a.calls - 1), firstMs: a.firstMs, syncedMs } : null,
    })}\n`,
  );
}
