/**
 * Super-network fine-tuning (LoNAS / NLS, spec.md §3): frozen base, trainable adapters, one sub-network
 * configuration drawn per micro-batch (each group uniformly, seeded), AdamW with cosine schedule and
 * warm-up, gradient accumulation and clipping. Every optimizer step is logged (JSONL, with the
 * configuration and loss of each micro-batch, which later feed the search's cheap candidates);
 * checkpoints every N steps allow a resume that continues bit-identically.
 *
 * The micro-batch stream is fixed by the seed: micro-batch m is batch (m mod n) of epoch ⌊m / n⌋, each
 * epoch shuffled with seed + epoch; the dropout masks of row b under the c-th configuration of micro-batch m
 * come from their own stream, derived from the seed and (m, c, b). So a resume needs only the step count
 * and the sub-network sampler's state.
 *
 * Under mpirun (src/dist/data-parallel.ts) each rank trains its rows of every micro-batch, the gradients are
 * summed once per step, and only rank 0 writes the log, the checkpoints and the events.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Rng, Tensor, backward } from '../tensor/index.ts';
import type { Batch } from '../io/batches.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { causalLmLoss } from '../models/llama/loss.ts';
import type { LoraLinear } from '../adapters/lora.ts';
import type { SearchSpace } from '../nas/search-space.ts';
import { applySubnet, namedSubnet, sampleSubnet } from '../nas/subnet.ts';
import { TRAIN_LOG } from '../nas/candidates.ts';
import { validationLoss } from '../nas/validation-loss.ts';
import type { SubnetConfig } from '../nas/subnet.ts';
import { AdamW } from './adamw.ts';
import { cosineWithWarmup } from './schedule.ts';
import { clipGradNorm } from './grad-clip.ts';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { SINGLE_PROCESS } from '../dist/mpi.ts';
import type { World } from '../dist/mpi.ts';
import { FusedGradientSum, shardBatch, shardedMeanLoss } from '../dist/data-parallel.ts';
import type { AllReduceStats } from '../dist/data-parallel.ts';
import { restoreCheckpoint } from './checkpoint-broadcast.ts';

export interface TrainOptions {
  outDir: string;
  /** optimizer steps; when absent, ⌈epochs · batches / gradAccum⌉ */
  steps?: number;
  epochs: number;
  gradAccum: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  /** 0 disables clipping */
  maxGradNorm: number;
  seed: number;
  /** save a checkpoint every N optimizer steps (0: only at the end) */
  checkpointEvery: number;
  /** validation loss (maximal sub-network) every N steps and at the end (0: only at the end) */
  evalEvery: number;
  /** sandwich rule: every micro-batch trains the maximal, the minimal and a sampled sub-network */
  sandwich: boolean;
  resume: boolean;
  /**
   * activation checkpointing per decoder layer (recompute in backward): less memory, the same numbers, so it is
   * not part of the run's identity (a resume may switch it)
   */
  gradientCheckpointing?: boolean;
  /** anything else that must match on resume (model path, data, adapter settings) */
  settingsKey: string;
}

export type TrainEvent =
  | { type: 'start'; totalSteps: number; startStep: number; microBatchesPerEpoch: number }
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      loss: number;
      lr: number;
      gradNorm: number;
      tokensPerSecond: number;
      elapsedSeconds: number;
    }
  | { type: 'eval'; step: number; valLoss: number }
  | { type: 'checkpoint'; step: number };

export interface TrainResult {
  steps: number;
  finalLoss: number;
  valLoss: number | null;
  tokensSeen: number;
  seconds: number;
  /** the gradient all-reduce, when more than one rank trained */
  allReduce?: AllReduceStats;
  /**
   * a resume found the checkpoint at the last step: nothing was trained, the losses are the ones train_log.jsonl
   * recorded (rank 0; NaN / null on the other ranks) and `seconds` is 0
   */
  finishedEarlier?: true;
}

export function train(
  model: LlamaModel,
  loras: LoraLinear[],
  space: SearchSpace,
  trainBatches: (epoch: number) => Batch[],
  valBatches: Batch[],
  o: TrainOptions,
  onEvent: (e: TrainEvent) => void = () => {},
  world: World = SINGLE_PROCESS,
): TrainResult {
  const writer = world.rank === 0;
  const emit = writer ? onEvent : () => {};
  if (writer) mkdirSync(o.outDir, { recursive: true });
  const params: Tensor[] = loras.flatMap((l) => l.trainable());
  const opt = new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay });
  const perEpoch = trainBatches(0).length;
  if (perEpoch === 0) throw new Error('no training batches: the training set is empty');
  const totalSteps = o.steps ?? Math.max(1, Math.ceil((o.epochs * perEpoch) / o.gradAccum));
  const key = createHash('sha256')
    .update(JSON.stringify({ ...o, resume: undefined, checkpointEvery: undefined, evalEvery: undefined, gradientCheckpointing: undefined }))
    .digest('hex')
    .slice(0, 16);
  let samplerRng = new Rng(o.seed).derive('subnet-sampler');
  const dropoutRng = new Rng(o.seed).derive('dropout');
  let step = 0,
    tokensSeen = 0;
  const logPath = join(o.outDir, TRAIN_LOG);
  if (o.resume) {
    const s = restoreCheckpoint(world, params, opt, () => loadCheckpoint(o.outDir, params, opt, key));
    step = s.step;
    tokensSeen = s.tokensSeen;
    samplerRng = new Rng(s.samplerRng);
    if (writer) truncateLog(logPath, step);
    if (step >= totalSteps) return { steps: step, tokensSeen, seconds: 0, ...loggedLosses(writer ? logPath : null), finishedEarlier: true };
  } else if (writer) writeFileSync(logPath, '');
  for (const l of loras) l.training = true;
  const configsPerMicro = o.sandwich ? 3 : 1;
  const gradSum = new FusedGradientSum(world, params, o.gradAccum * configsPerMicro);
  emit({ type: 'start', totalSteps, startStep: step, microBatchesPerEpoch: perEpoch });
  const maximal = namedSubnet(space, 'maximal'),
    minimal = namedSubnet(space, 'minimal');
  const started = Date.now();
  let epochCache: { epoch: number; batches: Batch[] } = { epoch: -1, batches: [] };
  let lastLoss = NaN,
    valLoss: number | null = null;
  let tokensThisRun = 0;

  while (step < totalSteps) {
    opt.zeroGrad();
    const configs: SubnetConfig[] = [],
      losses: number[] = [];
    for (let a = 0; a < o.gradAccum; a++) {
      const m = step * o.gradAccum + a;
      const epoch = Math.floor(m / perEpoch);
      if (epochCache.epoch !== epoch) epochCache = { epoch, batches: trainBatches(epoch) };
      const batch = epochCache.batches[m % perEpoch];
      if (batch.lossTokens === 0) throw new Error(`loss is NaN at step ${step + 1}: a batch has no target tokens`);
      const shard = shardBatch(batch, world);
      // this rank's share of the global micro-batch's token-mean loss (all of it in one process)
      const weight = shard ? shard.batch.lossTokens / batch.lossTokens : 0;
      const drawn = o.sandwich ? [maximal, minimal, sampleSubnet(space, samplerRng)] : [sampleSubnet(space, samplerRng)];
      drawn.forEach((config, c) => {
        configs.push(config);
        if (!shard || weight === 0) {
          losses.push(0);
          return;
        }
        applySubnet(model, space, config);
        const rowRngs = shard.rows.map((b) => dropoutRng.derive(`${m}.${c}.${b}`));
        for (const l of loras) l.rng = rowRngs;
        const checkpoint = o.gradientCheckpointing ? { rngs: rowRngs } : undefined;
        const loss = causalLmLoss(model.forward(shard.batch.inputIds, shard.batch.B, shard.batch.T, { checkpoint }), shard.batch.labels);
        const value = loss.item();
        if (!Number.isFinite(value)) throw new Error(`loss is ${value} at step ${step + 1}: training diverged (lower --lr)`);
        backward(loss, new Tensor(Float32Array.of(weight / o.gradAccum), [])); // mean over the accumulated micro-batches
        losses.push(value * weight);
      });
      tokensSeen += batch.realTokens;
      tokensThisRun += batch.realTokens;
    }
    const micro = gradSum.sum(losses).map((loss, i) => ({ config: configs[i], loss }));
    const lr = o.lr * cosineWithWarmup(step, o.warmup, totalSteps);
    opt.lr = lr;
    const gradNorm = clipGradNorm(params, o.maxGradNorm);
    opt.update();
    step++;
    lastLoss = micro.reduce((s, x) => s + x.loss, 0) / micro.length;
    const elapsed = (Date.now() - started) / 1000;
    if (writer)
      appendFileSync(
        logPath,
        `${JSON.stringify({ type: 'step', step, loss: lastLoss, lr, grad_norm: gradNorm, tokens: tokensSeen, micro })}\n`,
      );
    emit({
      type: 'step',
      step,
      totalSteps,
      loss: lastLoss,
      lr,
      gradNorm,
      tokensPerSecond: tokensThisRun / Math.max(elapsed, 1e-9),
      elapsedSeconds: elapsed,
    });
    if ((o.evalEvery > 0 && step % o.evalEvery === 0) || step === totalSteps) {
      if (valBatches.length) {
        valLoss = shardedMeanLoss(world, valBatches, (mine) => validationLoss(model, loras, space, maximal, mine));
        if (writer) appendFileSync(logPath, `${JSON.stringify({ type: 'eval', step, val_loss: valLoss, subnet: 'maximal' })}\n`);
        emit({ type: 'eval', step, valLoss });
      }
    }
    if ((o.checkpointEvery > 0 && step % o.checkpointEvery === 0) || step === totalSteps) {
      if (writer) saveCheckpoint(o.outDir, params, opt, { step, samplerRng: samplerRng.getState(), tokensSeen, settingsKey: key });
      emit({ type: 'checkpoint', step });
    }
  }
  for (const l of loras) l.training = false;
  applySubnet(model, space, maximal);
  return {
    steps: step,
    finalLoss: lastLoss,
    valLoss,
    tokensSeen,
    seconds: (Date.now() - started) / 1000,
    ...(world.size > 1 ? { allReduce: gradSum.stats } : {}),
  };
}

/** On resume, drop log lines written after the checkpoint so the log matches an uninterrupted run. */
function truncateLog(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l && (JSON.parse(l) as { step: number }).step <= step);
  writeFileSync(path, kept.map((l) => `${l}\n`).join(''));
}

/** The last step's loss and the last validation loss train_log.jsonl holds (NaN / null without a log). */
function loggedLosses(path: string | null): { finalLoss: number; valLoss: number | null } {
  const lines = path && existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  const entries = lines.map((l) => JSON.parse(l) as { type: string; loss?: number; val_loss?: number });
  return {
    finalLoss: entries.filter((e) => e.type === 'step').at(-1)?.loss ?? NaN,
    valLoss: entries.filter((e) => e.type === 'eval').at(-1)?.val_loss ?? null,
  };
}
