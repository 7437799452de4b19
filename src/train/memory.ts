/**
 * The fine-tuning memory estimate (issue 15): peak bytes of one training process, before the first step, so that a
 * run that cannot fit is refused with the numbers and the fix instead of being killed (or swapping) an hour in.
 *
 *   peak = weights + adapters + activations + workspace + runtime
 *
 *   weights      the base as it is stored now (model.weightStorage(): bf16 bits stay 2 bytes)
 *   adapters     P trainable floats × (value + gradient + AdamW's two moments [+ the all-reduce buffer under mpirun]) × 4 B
 *   activations  what the autograd graph holds at the end of the forward (autograd.ts graphBytes: the tensors the ops
 *                saved for their backward; the graph refers to every other intermediate by handle, without its data),
 *                N = rows × seq tokens:
 *     per decoder layer, per token, in floats (C hidden, Cq = Hq·D queries, Ckv keys/values, I intermediate, T seq):
 *       2C + 2            the two RMSNorms' inputs and their 1/rms
 *       + Cq + 2·Ckv      the attention's rope(q), rope(k) and v
 *       + Hq·T            its probabilities (B, Hq, T, T)
 *       + 2I              SwiGLU's gate and up
 *       + per LoRA projection: r (A x, for B's gradient), and the input A's gradient reads: dropout(x) and its mask
 *         (in floats + in bytes) with dropout, else x itself, held once per distinct input (q/k/v share the first
 *         norm's output, gate/up the second's; o reads the attention output, down silu(gate)·up)
 *     A frozen projection keeps nothing (its input gradient needs only the weight).
 *     A SparsePEFT projection keeps its input (as LoRA) but no A x: its update is the dense masked delta
 *     (s·BA) ⊙ M, (out, in) floats per layer whatever the tokens (sparsePeftLayerBytes), and its mask, one byte per
 *     weight, is counted with the adapters. QA-SparsePEFT (dropout 0) holds the same: its input and its
 *     fake-quantised merged weight (out, in) in place of the delta.
 *     Llama-2-7B at T = 256, LoRA r 32 on all seven, dropout: 86 498 floats + 35 584 mask bytes ≈ 0.38 MB per token per
 *     layer (1.05 MB while the graph held every intermediate).
 *     The head: (C + 1) the final norm's input and 1/rms + V logits + 2 (log-sum-exp, target) per token; the rope
 *     positions (4 bytes per token) and its cos/sin tables (2 × maxPositions × D/2 floats, once), unless checkpointed.
 *     With gradient checkpointing only each layer's input (C per token) stays, plus one layer recomputed in backward.
 *   workspace    the transient of backward: the logits' gradient (N·V) and the attention's score gradient (N·Hq·T);
 *                the other gradients take the place of the activations backward releases as it goes. With
 *                checkpointing, one layer's recomputed graph (its activations) on top.
 *   runtime      Node, the addon, OpenBLAS's buffers, the tokenised data: RUNTIME_BYTES; and the scratch pool of
 *                released gradient buffers backward reuses, at most SCRATCH_POOL_BYTES (src/tensor/scratch.ts)
 *
 * Measured (Llama-2-7B shapes, 2 layers, batch 4 × 256, LoRA r 32 on all seven, dropout; peak RSS of lonas finetune,
 * one step): plain LoRA 3.76 GiB against 3.81 estimated, checkpointed 2.79 GiB against 2.84; so within ~2 %, above.
 * LoNAS draws narrower sub-networks too, which need less (the estimate is the maximal one's).
 *
 * The activation formula is checked against graphBytes on small models (test/train/memory.test.ts); the whole
 * estimate against the peak RSS of `lonas finetune` on the Llama-2-7B layer shapes by `npm run bench -- memory`.
 */
import { freemem, totalmem } from 'node:os';
import type { LlamaModel } from '../models/llama/model.ts';
import { PROJECTIONS } from '../models/llama/model.ts';
import type { ProjectionName } from '../models/llama/model.ts';
import { llamaWeightTable } from '../models/llama/weights.ts';
import { LoraLinear } from '../adapters/lora.ts';
import { SparsePeft } from '../adapters/sqft.ts';
import { SCRATCH_POOL_BYTES } from '../tensor/scratch.ts';

/** Node + the native addon + OpenBLAS + the Llama-2 tokenizer: 130 MiB measured (peak RSS); the rest for the tokenised data */
export const RUNTIME_BYTES = 192 * 2 ** 20;
const F32 = 4;
export const GIB = 2 ** 30;

export interface TrainingShape {
  /** rows of a micro-batch this process trains (the batch size over the data-parallel ranks) */
  rows: number;
  /** tokens per row (the longest padded batch) */
  seq: number;
  checkpointing: boolean;
  /** data-parallel ranks (> 1 adds the fused gradient buffer) */
  ranks: number;
}

export interface MemoryEstimate {
  weights: number;
  adapters: number;
  activations: number;
  workspace: number;
  runtime: number;
  total: number;
}

/** Bytes the graph holds per token for decoder layer i (the formula above). */
export function layerActivationBytesPerToken(model: LlamaModel, i: number, seq: number): number {
  const table = llamaWeightTable(model.config).layers[i];
  const [Cq, C] = table.proj.q_proj.weight.shape,
    Ckv = table.proj.k_proj.weight.shape[0],
    I = table.proj.gate_proj.weight.shape[0];
  const Hq = Cq / model.config.headDim;
  // the first layer's first norm reads the frozen embedding: nothing there needs a gradient, so nothing is saved
  const first = i === 0;
  let floats = (first ? C + 1 : 2 * C + 2) + Cq + 2 * Ckv + Hq * seq + 2 * I,
    maskBytes = 0;
  // without dropout, A's gradient reads the projection's input itself: one buffer per input shared by its projections
  const sharedInputs = new Set<string>();
  const inputOf: Record<ProjectionName, string> = {
    q_proj: 'norm1',
    k_proj: 'norm1',
    v_proj: 'norm1',
    o_proj: 'attention',
    gate_proj: 'norm2',
    up_proj: 'norm2',
    down_proj: 'swiglu',
  };
  for (const p of PROJECTIONS) {
    const inF = table.proj[p].weight.shape[1];
    const m = model.layers[i].proj[p];
    if (!(m instanceof LoraLinear)) continue;
    // SparsePEFT's update goes through its dense masked delta (sparsePeftLayerBytes), with no A x
    if (!(m.variant instanceof SparsePeft)) floats += m.rMax;
    if (m.dropoutP > 0) {
      floats += inF;
      // (dropout of a first-layer q/k/v input is not recorded: its mask is not kept)
      if (!(first && inputOf[p] === 'norm1')) maskBytes += inF;
    } else if (!sharedInputs.has(inputOf[p])) {
      sharedInputs.add(inputOf[p]);
      floats += inF;
    }
  }
  return floats * F32 + maskBytes;
}

/** Bytes decoder layer i's graph holds whatever the tokens: the masked deltas (out, in) of its SparsePEFT projections. */
export function sparsePeftLayerBytes(model: LlamaModel, i: number): number {
  let bytes = 0;
  for (const p of PROJECTIONS) {
    const m = model.layers[i].proj[p];
    if (m instanceof LoraLinear && m.variant instanceof SparsePeft) bytes += m.base.weightShape[0] * m.base.weightShape[1] * F32;
  }
  return bytes;
}

/** Bytes the graph holds at the end of the forward of `rows × seq` tokens (see the formula above). */
export function activationBytes(model: LlamaModel, s: Omit<TrainingShape, 'ranks'>): number {
  const N = s.rows * s.seq,
    C = model.config.hiddenSize,
    V = model.config.vocabSize;
  const layers = model.layers.map((_, i) => layerActivationBytesPerToken(model, i, s.seq));
  const kept = s.checkpointing ? layers.length * C * F32 : layers.reduce((a, b) => a + b, 0);
  // the RoPE tables the rope ops keep (cos and sin, maxPositions × D/2 each, held once) and the positions (one int32
  // per token); checkpointed, they live inside the layers' dropped graphs
  const rope = s.checkpointing ? 0 : N * 4 + model.config.maxPositions * model.config.headDim * F32;
  const deltas = s.checkpointing ? 0 : model.layers.reduce((a, _, i) => a + sparsePeftLayerBytes(model, i), 0);
  return N * (kept + (C + 1 + V + 2) * F32) + rope + deltas;
}

/** The peak estimate of one training process (see the formula above). */
export function estimateTrainingMemory(model: LlamaModel, s: TrainingShape): MemoryEstimate {
  const N = s.rows * s.seq,
    V = model.config.vocabSize;
  const trainable = model.layers.reduce(
    (n, l) => n + Object.values(l.proj).reduce((k, p) => k + p.trainable().reduce((a, t) => a + t.size, 0), 0),
    0,
  );
  const weights = model.weightStorage().bytes;
  const masks = model.layers.reduce(
    (n, l) =>
      n +
      Object.values(l.proj).reduce(
        (k, p) => k + (p instanceof LoraLinear && p.variant instanceof SparsePeft ? p.variant.mask.bits.length : 0),
        0,
      ),
    0,
  );
  const adapters = trainable * F32 * (s.ranks > 1 ? 5 : 4) + masks;
  const activations = activationBytes(model, s);
  const layerMax = Math.max(...model.layers.map((_, i) => layerActivationBytesPerToken(model, i, s.seq)));
  const heads = Math.max(...model.config.layers.map((l) => l.numHeads));
  // backward releases each op's saved tensors as it produces their gradients, so a kept graph shrinks as fast as
  // the gradients grow (measured); a checkpointed layer's recomputed graph comes on top of the kept inputs
  const layerDeltas = Math.max(...model.layers.map((_, i) => sparsePeftLayerBytes(model, i)));
  const workspace = N * (V * F32 + heads * s.seq * F32 + (s.checkpointing ? layerMax : 0)) + (s.checkpointing ? layerDeltas : 0);
  const runtime = RUNTIME_BYTES + SCRATCH_POOL_BYTES;
  return { weights, adapters, activations, workspace, runtime, total: weights + adapters + activations + workspace + runtime };
}

/**
 * What this process may use: the memory available now (MemAvailable, which os.freemem reports on Linux) plus what it
 * already holds (the loaded weights are in the estimate too), within the machine's or the cgroup's total.
 */
export function availableMemory(): { available: number; total: number } {
  const constrained = process.constrainedMemory?.() || Infinity;
  const total = Math.min(totalmem(), constrained);
  return { available: Math.min(total, freemem() + process.memoryUsage().rss), total };
}

/** The process's peak resident set so far (getrusage maxrss), bytes. */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** 23.5 GiB, 3.84 GiB, 0.15 GiB, 37 MiB */
export const gib = (bytes: number) =>
  bytes >= 10 * GIB
    ? `${(bytes / GIB).toFixed(1)} GiB`
    : bytes >= GIB / 8
      ? `${(bytes / GIB).toFixed(2)} GiB`
      : `${Math.round(bytes / 2 ** 20)} MiB`;

export function describeEstimate(e: MemoryEstimate): string {
  return (
    `${gib(e.total)} = weights ${gib(e.weights)} + adapters and optimizer ${gib(e.adapters)} + activations ${gib(e.activations)}` +
    ` + backward workspace ${gib(e.workspace)} + runtime ${gib(e.runtime)}`
  );
}

export const CHECKPOINTING_MODES = ['auto', 'on', 'off'] as const;
export type CheckpointingMode = (typeof CHECKPOINTING_MODES)[number];

export interface MemoryPlan {
  checkpointing: boolean;
  estimate: MemoryEstimate;
  /**
   * The estimate is at most half the limit, so freed buffers may stay in the heap for the next step
   * (retainFreedMemory): a step's activations recur every step, and fresh memory costs a page fault per 4 KiB
   * (135M shape, 4 × 128 tokens: ~2.6 GB of fresh buffers a step, ~12 % of its CPU time). Off near the limit,
   * where the heap's fragmentation could raise the peak.
   */
  retainFreed: boolean;
  /** one line for the log: the estimate, the limit, and why checkpointing is on or off */
  summary: string;
}

/**
 * Decides gradient checkpointing ('auto': on only when the run does not fit without it) and refuses a run whose
 * estimate exceeds `limit` bytes, naming the numbers and the fix: a batch size that fits (with the gradient
 * accumulation that keeps the examples per step), checkpointing, or --memory-limit.
 */
export function planTrainingMemory(
  model: LlamaModel,
  run: { batchSize: number; gradAccum: number; seq: number; ranks: number; mode: CheckpointingMode },
  limit: { bytes: number; what: string },
): MemoryPlan {
  const rows = run.batchSize / run.ranks;
  const at = (r: number, checkpointing: boolean) =>
    estimateTrainingMemory(model, { rows: r, seq: run.seq, checkpointing, ranks: run.ranks });
  const fits = (e: MemoryEstimate) => e.total <= limit.bytes;
  const plain = at(rows, false),
    ckpt = at(rows, true);
  const checkpointing = run.mode === 'on' || (run.mode === 'auto' && !fits(plain) && fits(ckpt));
  const estimate = checkpointing ? ckpt : plain;
  const shape = `batch ${run.batchSize}${run.ranks > 1 ? ` (${rows} rows per rank)` : ''} × ${run.seq} tokens`;
  if (fits(estimate)) {
    const why =
      run.mode === 'auto'
        ? checkpointing
          ? `on: needed to fit (without it ${gib(plain.total)})`
          : 'off: not needed'
        : `${run.mode} (--gradient-checkpointing ${run.mode})`;
    return {
      checkpointing,
      estimate,
      retainFreed: estimate.total <= limit.bytes / 2,
      summary: `memory: estimated peak ${describeEstimate(estimate)} for ${shape}, ${gib(limit.bytes)} ${limit.what}; gradient checkpointing ${why}`,
    };
  }
  // refused: the least this batch needs under the mode, and what would fit
  const least = run.mode === 'off' ? plain : ckpt;
  const fixes: string[] = [];
  if (run.mode === 'off' && fits(ckpt)) fixes.push(`--gradient-checkpointing (≈ ${gib(ckpt.total)})`);
  for (let r = rows - 1; r >= 1; r--) {
    const flag = run.mode === 'off' && !fits(at(r, false)) ? ' --gradient-checkpointing' : '';
    const e = at(r, run.mode !== 'off' || flag !== '');
    if (!fits(e)) continue;
    const b = r * run.ranks,
      accum = Math.ceil((run.batchSize * run.gradAccum) / b);
    fixes.push(
      `--batch-size ${b} --grad-accum ${accum}${flag} (≈ ${gib(e.total)}, the same ${run.batchSize * run.gradAccum} examples per step)`,
    );
    break;
  }
  const floor = at(1, true);
  if (!fits(floor))
    fixes.push(
      `nothing at this sequence length fits: even batch ${run.ranks} with checkpointing needs ${gib(floor.total)}` +
        ` (the weights alone ${gib(floor.weights)}); a shorter --cutoff-len or a machine with more memory`,
    );
  fixes.push('--memory-limit GIB to try anyway');
  const how = least === ckpt ? ` with gradient checkpointing${run.mode === 'auto' ? ` (without it ${gib(plain.total)})` : ''}` : '';
  throw new Error(
    `finetune would need about ${describeEstimate(least)} for ${shape}${how}, more than the ${gib(limit.bytes)} ${limit.what}; ` +
      `fix: ${fixes.join('; or ')}`,
  );
}
