/**
 * Training data: read LLM-Adapters JSON / GSM8K JSONL files, mix and sample them, hold out a validation
 * split, and tokenize examples the way alpaca-lora / LLM-Adapters / LoNAS do. Every random choice is
 * drawn from a seeded Rng, so the same files and seed give the same examples in the same order.
 * Batching (padding, length grouping) lives in batches.ts and is re-exported here.
 */
import { IGNORE_INDEX } from './batches.ts';
import { Rng } from '../tensor/rng.ts';
import { readExamples } from './dataset-files.ts';
import { promptFor, type Example } from './prompt.ts';
import type { LonasTokenizer } from './tokenizer.ts';

export { readExamples, type RecordFormat } from './dataset-files.ts';
export { makeBatches, type Batch, type BatchOptions } from './batches.ts';
export type { Example } from './prompt.ts';

export interface MixSpec {
  file: string;
  /** how many examples to draw (seeded, without replacement); all of them when absent */
  count?: number;
}

/** "a.json:1000,b.jsonl" → files with optional sample counts (finetune --data, search --data). */
export function parseDataSpecs(list: string): MixSpec[] {
  return list
    .split(',')
    .filter(Boolean)
    .map((item) => {
      const m = item.match(/^(.*):(\d+)$/);
      return m ? { file: m[1], count: Number(m[2]) } : { file: item };
    });
}

/**
 * Reads each file, draws `count` examples from it (seeded sample without replacement; all when count is
 * absent), concatenates the draws and shuffles the whole mix with the seed.
 */
export function loadTrainingMix(specs: MixSpec[], seed: number): Example[] {
  if (specs.length === 0) throw new Error('loadTrainingMix: no data files given');
  const rng = new Rng(seed);
  const mix: Example[] = [];
  specs.forEach((spec, i) => {
    const examples = readExamples(spec.file);
    if (spec.count === undefined) {
      mix.push(...examples);
      return;
    }
    if (!Number.isInteger(spec.count) || spec.count < 1) {
      throw new Error(`${spec.file}: sample count must be a positive integer, got ${spec.count}`);
    }
    if (spec.count > examples.length) {
      throw new Error(`${spec.file}: asked for ${spec.count} examples but the file has only ${examples.length}`);
    }
    mix.push(...sampleWithoutReplacement(examples, spec.count, rng.derive(`sample:${i}`)));
  });
  return rng.derive('shuffle').shuffle(mix);
}

/** `count` distinct items drawn uniformly (partial Fisher–Yates), in draw order. */
function sampleWithoutReplacement<T>(items: T[], count: number, rng: Rng): T[] {
  const idx = items.map((_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(idx.length - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, count).map((i) => items[i]);
}

/**
 * Holds out `valSize` examples chosen with the seed (the reference holds out 1,000 with seed 42).
 * Both parts keep the input's relative order. valSize 0 gives an empty validation set.
 */
export function splitValidation<T>(examples: T[], valSize: number, seed: number): { train: T[]; val: T[] } {
  if (!Number.isInteger(valSize) || valSize < 0) throw new Error(`validation size must be a non-negative integer, got ${valSize}`);
  if (valSize >= examples.length) {
    throw new Error(`validation size ${valSize} leaves no training examples (the data has ${examples.length})`);
  }
  const picked = new Uint8Array(examples.length);
  const order = new Rng(seed).shuffle(examples.map((_, i) => i));
  for (let k = 0; k < valSize; k++) picked[order[k]] = 1;
  return {
    train: examples.filter((_, i) => !picked[i]),
    val: examples.filter((_, i) => picked[i]),
  };
}

export interface TokenizedExample {
  inputIds: number[];
  /** aligned with inputIds (the loss shifts them); IGNORE_INDEX (-100) where no loss is taken */
  labels: number[];
}

export interface TokenizeOptions {
  /** maximum tokens per example (reference: 256); longer examples are cut and get no EOS */
  cutoffLen: number;
  /** loss on prompt and response (default, as the reference); false: on the response (+ EOS) only */
  trainOnInputs?: boolean;
  /** append EOS when there is room (default true) */
  addEos?: boolean;
}

/**
 * As alpaca-lora's `generate_and_tokenize_prompt`: tokens = BOS + encode(full prompt with response), cut
 * to cutoffLen; EOS appended if the last token is not already EOS and the sequence is shorter than
 * cutoffLen. Without trainOnInputs the first len(BOS + encode(prompt without response)) labels are
 * IGNORE_INDEX (the prompt is cut to cutoffLen too, so a fully truncated example has no targets).
 */
export function tokenizeExample(tok: LonasTokenizer, example: Example, opts: TokenizeOptions): TokenizedExample {
  const { cutoffLen, trainOnInputs = true, addEos = true } = opts;
  if (!Number.isInteger(cutoffLen) || cutoffLen < 1) throw new Error(`cutoffLen must be a positive integer, got ${cutoffLen}`);
  const inputIds = tok.encode(promptFor(example, { withResponse: true }), { addBos: true, addEos: false }).slice(0, cutoffLen);
  if (addEos) {
    const eos = eosIdOf(tok);
    if (inputIds[inputIds.length - 1] !== eos && inputIds.length < cutoffLen) inputIds.push(eos);
  }
  const labels = inputIds.slice();
  if (!trainOnInputs) {
    const promptLen = Math.min(tok.encode(promptFor(example, { withResponse: false }), { addBos: true, addEos: false }).length, cutoffLen);
    labels.fill(IGNORE_INDEX, 0, promptLen);
  }
  return { inputIds, labels };
}

/** The id the tokenizer itself appends as EOS (its eos_token; transformers' tokenizer.eos_token_id). */
function eosIdOf(tok: LonasTokenizer): number {
  const ids = tok.encode('', { addBos: false, addEos: true });
  if (ids.length !== 1) throw new Error('the tokenizer has no EOS token; cannot end training examples with EOS (use addEos: false)');
  return ids[0];
}
