/**
 * Data-parallel training over an MPI world (issue 16). `--batch-size B` stays the global micro-batch: every
 * rank builds the same batches (same seed), trains on its rows of each one, and the trainable tensors'
 * gradients are summed over the ranks once per optimizer step, in one fused buffer. With the loss of a rank's
 * rows weighted by (its target tokens / the global micro-batch's target tokens), the sum is the gradient of
 * the global micro-batch's token-mean loss, so an N-rank run equals the 1-process run up to summation order.
 */
import type { Batch } from '../io/batches.ts';
import { IGNORE_INDEX } from '../io/batches.ts';
import { Tensor } from '../tensor/index.ts';
import type { World } from './mpi.ts';

export interface Shard {
  /** this rank's rows, at the global micro-batch's T (right padding never reaches a real token) */
  batch: Batch;
  /** the global row index of each local row */
  rows: number[];
}

/** Rows ⌊r·B/N⌋ … ⌊(r+1)·B/N⌋ − 1 of the global micro-batch for rank r of N; null when that is no row. */
export function shardBatch(batch: Batch, w: Pick<World, 'rank' | 'size'>): Shard | null {
  const rows = Array.from({ length: batch.B }, (_, b) => b);
  if (w.size === 1) return { batch, rows };
  const lo = Math.floor((w.rank * batch.B) / w.size),
    hi = Math.floor(((w.rank + 1) * batch.B) / w.size);
  if (hi === lo) return null;
  const T = batch.T;
  const labels = batch.labels.slice(lo * T, hi * T);
  let lossTokens = 0;
  for (let b = 0; b < hi - lo; b++) for (let t = 1; t < T; t++) if (labels[b * T + t] !== IGNORE_INDEX) lossTokens++;
  const lengths = batch.lengths.slice(lo, hi);
  return {
    batch: {
      inputIds: batch.inputIds.slice(lo * T, hi * T),
      labels,
      B: hi - lo,
      T,
      lengths,
      realTokens: lengths.reduce((s, n) => s + n, 0),
      lossTokens,
      indices: batch.indices.slice(lo, hi),
    },
    rows: rows.slice(lo, hi),
  };
}

/** A clear error when the world cannot split the global micro-batch evenly. */
export function checkBatchSplit(batchSize: number, w: Pick<World, 'size'>): void {
  if (batchSize % w.size !== 0) {
    throw new Error(
      `--batch-size ${batchSize} is the global micro-batch, split over the ${w.size} ranks of this mpirun job: ` +
        `use a multiple of ${w.size} (or run with -np dividing ${batchSize})`,
    );
  }
}

export interface AllReduceStats {
  /** all-reduce calls (one per optimizer step) */
  calls: number;
  /** bytes each rank contributes per call */
  bytes: number;
  /** wall time spent in the calls, milliseconds */
  ms: number;
  /** the first call's share of `ms` (it also opens the connections between the ranks) */
  firstMs: number;
}

/**
 * One MPI_Allreduce per optimizer step over one Float32 buffer laid out as
 *   [ gradients of params[0], params[1], … (in order) | one "has a gradient" flag per param | extra values ].
 * A parameter keeps no gradient (AdamW skips it, as in one process) only when no rank computed one.
 */
export class FusedGradientSum {
  readonly stats: AllReduceStats = { calls: 0, bytes: 0, ms: 0, firstMs: 0 };
  private readonly buffer: Float32Array;
  private readonly gradElements: number;

  constructor(
    private readonly w: World,
    private readonly params: Tensor[],
    private readonly extras: number,
  ) {
    this.gradElements = params.reduce((s, p) => s + p.size, 0);
    this.buffer = w.size === 1 ? new Float32Array(0) : new Float32Array(this.gradElements + params.length + extras);
    this.stats.bytes = this.buffer.byteLength;
  }

  /** Sums the gradients in place over the ranks; returns the sums of `values` (extras per rank, e.g. losses). */
  sum(values: number[]): number[] {
    if (values.length !== this.extras) throw new Error(`FusedGradientSum: ${values.length} values for ${this.extras} slots`);
    if (this.w.size === 1) return values;
    const buf = this.buffer;
    let at = 0;
    this.params.forEach((p, i) => {
      if (p.grad) buf.set(p.grad.contiguousData(), at);
      else buf.fill(0, at, at + p.size);
      buf[this.gradElements + i] = p.grad ? 1 : 0;
      at += p.size;
    });
    buf.set(values, this.gradElements + this.params.length);
    const t0 = performance.now();
    this.w.allreduceSum(buf);
    const ms = performance.now() - t0;
    if (this.stats.calls++ === 0) this.stats.firstMs = ms;
    this.stats.ms += ms;
    at = 0;
    this.params.forEach((p, i) => {
      if (buf[this.gradElements + i] > 0)
        p.grad = new Tensor(
          p.data instanceof Float64Array ? Float64Array.from(buf.subarray(at, at + p.size)) : buf.slice(at, at + p.size),
          p.shape,
        );
      at += p.size;
    });
    return Array.from(buf.subarray(this.gradElements + this.params.length));
  }
}

/**
 * The token-weighted mean of `lossOf` over batches spread round-robin over the ranks (every rank gets the
 * result). `lossOf` returns the token-weighted mean over the batches it is given.
 */
export function shardedMeanLoss(w: World, batches: Batch[], lossOf: (mine: Batch[]) => number): number {
  if (w.size === 1) return lossOf(batches);
  const mine = batches.filter((_, i) => i % w.size === w.rank);
  const tokens = mine.reduce((s, b) => s + b.lossTokens, 0);
  const sums = Float64Array.of(tokens > 0 ? lossOf(mine) * tokens : 0, tokens);
  w.allreduceSum(sums);
  return sums[0] / sums[1];
}
