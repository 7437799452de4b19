/**
 * Padded batches of tokenized examples, as DataCollatorForSeq2Seq builds them: each batch is padded to
 * its longest example (optionally rounded up to a multiple), inputs with padId and labels with
 * IGNORE_INDEX. Padding is on the right, so with causal attention the real tokens never see it and no
 * attention mask is needed. Optional length grouping (HF's LengthGroupedSampler idea) wastes less padding.
 */
import { Rng } from '../tensor/rng.ts';

/** Label of a token that takes no loss (Hugging Face's -100, the ignore_index of its cross-entropy). */
export const IGNORE_INDEX = -100;

export interface Batch {
  /** B·T token ids, row-major, right-padded with padId */
  inputIds: Int32Array;
  /** B·T labels aligned with inputIds, padded with IGNORE_INDEX */
  labels: Int32Array;
  B: number;
  T: number;
  /** unpadded length of each row */
  lengths: number[];
  /** real (non-pad) tokens in the batch, for tokens/s */
  realTokens: number;
  /** targets the shifted next-token loss counts: labels[t] ≠ IGNORE_INDEX for t ≥ 1 in each row */
  lossTokens: number;
  /** positions of the rows' examples in the input array */
  indices: number[];
}

export interface BatchOptions {
  padId: number;
  seed: number;
  /** shuffle the examples first (default true); use a different seed per epoch */
  shuffle?: boolean;
  /**
   * group examples of similar length (default false, as the reference runs): the order is cut into
   * buckets of 50 batches, each bucket is sorted by length (longest first) and cut into batches.
   */
  groupByLength?: boolean;
  /** drop a last batch smaller than batchSize (default false) */
  dropLast?: boolean;
  /** round T up to a multiple of this (the reference collator uses 8; default 1) */
  padToMultipleOf?: number;
}

const BUCKET_BATCHES = 50; // transformers' LengthGroupedSampler megabatch multiplier

export function makeBatches(examples: { inputIds: number[]; labels: number[] }[], batchSize: number, opts: BatchOptions): Batch[] {
  const { padId, seed, shuffle = true, groupByLength = false, dropLast = false, padToMultipleOf = 1 } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(padToMultipleOf) || padToMultipleOf < 1)
    throw new Error(`padToMultipleOf must be a positive integer, got ${padToMultipleOf}`);
  if (!Number.isInteger(padId)) throw new Error(`padId must be an integer token id, got ${padId}`);
  examples.forEach((e, i) => {
    if (e.inputIds.length === 0) throw new Error(`example ${i} has no tokens`);
    if (e.labels.length !== e.inputIds.length) {
      throw new Error(`example ${i}: ${e.labels.length} labels for ${e.inputIds.length} input ids`);
    }
  });

  const rng = new Rng(seed);
  let order = examples.map((_, i) => i);
  if (shuffle) rng.shuffle(order);
  if (groupByLength) {
    const bucket = batchSize * BUCKET_BATCHES;
    const grouped: number[] = [];
    for (let s = 0; s < order.length; s += bucket) {
      // stable sort, longest first; ties keep the (seeded) order
      grouped.push(...order.slice(s, s + bucket).sort((a, b) => examples[b].inputIds.length - examples[a].inputIds.length));
    }
    order = grouped;
  }

  const batches: Batch[] = [];
  for (let s = 0; s < order.length; s += batchSize) {
    const indices = order.slice(s, s + batchSize);
    if (dropLast && indices.length < batchSize) break;
    batches.push(collate(examples, indices, padId, padToMultipleOf));
  }
  return batches;
}

function collate(examples: { inputIds: number[]; labels: number[] }[], indices: number[], padId: number, multiple: number): Batch {
  const lengths = indices.map((i) => examples[i].inputIds.length);
  const B = indices.length;
  const T = Math.ceil(Math.max(...lengths) / multiple) * multiple;
  const inputIds = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  let realTokens = 0,
    lossTokens = 0;
  indices.forEach((ex, b) => {
    const e = examples[ex];
    inputIds.set(e.inputIds, b * T);
    labels.set(e.labels, b * T);
    realTokens += e.inputIds.length;
    for (let t = 1; t < e.labels.length; t++) if (e.labels[t] !== IGNORE_INDEX) lossTokens++;
  });
  return { inputIds, labels, B, T, lengths, realTokens, lossTokens, indices };
}
