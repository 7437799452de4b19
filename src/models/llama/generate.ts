/**
 * Text generation over the KV cache: greedy, sampling (temperature, top-p, seeded), and beam search
 * with transformers' default length handling. Several prompts run as one left-padded batch; the tokens
 * they all start with (a prompt template) are prefilled once for the whole batch.
 */
import { Rng } from '../../tensor/rng.ts';
import type { LlamaModel } from './model.ts';

export type Strategy =
  | { kind: 'greedy' }
  | { kind: 'sample'; temperature: number; topP: number; seed: number }
  | { kind: 'beam'; beams: number; lengthPenalty?: number };

export interface GenerateOptions {
  maxNewTokens: number;
  strategy: Strategy;
  /** generation stops for a row when it emits one of these */
  eosIds: number[];
  /** called after each step with the new token of every row (−1 for finished rows); not called for beam search */
  onStep?: (tokens: number[]) => void;
}

/** Generates continuations (token ids, EOS excluded) for each prompt (token ids, BOS already included). */
export function generate(model: LlamaModel, prompts: number[][], opts: GenerateOptions): number[][] {
  if (prompts.length === 0) return [];
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`generate: prompt ${i} has no tokens (a model needs at least BOS to start from)`);
  });
  if (!(opts.maxNewTokens >= 0)) throw new Error(`generate: maxNewTokens must be ≥ 0, got ${opts.maxNewTokens}`);
  if (opts.strategy.kind === 'beam') return prompts.map((p) => beamSearch(model, p, opts, (opts.strategy as { beams: number }).beams));
  return sampleBatch(model, prompts, opts);
}

/** Left-pads prompts to one length. Row b's real tokens start at keyStart[b]; positions count from 0 there. */
function leftPad(prompts: number[][]): { ids: Int32Array; T: number; keyStart: Int32Array; positions: Int32Array } {
  const T = Math.max(...prompts.map((p) => p.length));
  const B = prompts.length;
  const ids = new Int32Array(B * T);
  const keyStart = new Int32Array(B);
  const positions = new Int32Array(B * T);
  prompts.forEach((p, b) => {
    const pad = T - p.length;
    keyStart[b] = pad;
    ids.set(p, b * T + pad); // padding slots keep id 0; they are masked out of attention
    for (let t = 0; t < T; t++) positions[b * T + t] = Math.max(0, t - pad);
  });
  return { ids, T, keyStart, positions };
}

function sampleBatch(model: LlamaModel, prompts: number[][], opts: GenerateOptions): number[][] {
  const B = prompts.length;
  const { ids, T, keyStart, positions } = leftPad(prompts);
  const cache = model.newCache(B, T + opts.maxNewTokens);
  const rng = opts.strategy.kind === 'sample' ? new Rng(opts.strategy.seed) : null;
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  const anyPad = keyStart.some((s) => s > 0);
  const sharedPrefix = B > 1 ? sharedPromptPrefix(prompts) : 0;
  let logits = model.forwardCached(ids, B, T, cache, { positions, keyStart: anyPad ? keyStart : null, lastOnly: true, sharedPrefix });
  for (let step = 0; step < opts.maxNewTokens; step++) {
    const V = logits.shape[2];
    const data = logits.contiguousData();
    const next = new Int32Array(B);
    const reported: number[] = [];
    for (let b = 0; b < B; b++) {
      const row = data.subarray(b * V, (b + 1) * V);
      const tok = done[b] ? 0 : rng ? sampleToken(row, opts.strategy as { temperature: number; topP: number }, rng) : argmax(row);
      next[b] = tok;
      if (done[b]) {
        reported.push(-1);
        continue;
      }
      if (opts.eosIds.includes(tok)) done[b] = true;
      else out[b].push(tok);
      reported.push(tok);
    }
    opts.onStep?.(reported);
    if (done.every(Boolean) || step === opts.maxNewTokens - 1) break;
    const pos = Int32Array.from({ length: B }, (_, b) => cache.length - keyStart[b]);
    logits = model.forwardCached(next, B, 1, cache, { positions: pos, keyStart: anyPad ? keyStart : null });
  }
  return out;
}

/** Shorter common prefixes are not worth a separate pass through the model. */
const MIN_SHARED_PREFIX = 4;

/**
 * How many leading tokens every prompt shares (prompt templates make this long), capped so each prompt keeps
 * at least one token of its own; 0 when shorter than MIN_SHARED_PREFIX. The prefill computes them once.
 */
export function sharedPromptPrefix(prompts: number[][]): number {
  const cap = Math.min(...prompts.map((p) => p.length)) - 1;
  let n = 0;
  while (n < cap && prompts.every((p) => p[n] === prompts[0][n])) n++;
  return n >= MIN_SHARED_PREFIX ? n : 0;
}

/** Index of the largest value (the first one on ties, as torch.argmax). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Temperature, then nucleus (top-p) filtering as transformers' TopPLogitsWarper, then a seeded draw. */
export function sampleToken(logits: ArrayLike<number>, s: { temperature: number; topP: number }, rng: Rng): number {
  if (!(s.temperature > 0)) throw new Error(`sampling temperature must be > 0, got ${s.temperature} (use greedy decoding for 0)`);
  if (!(s.topP > 0 && s.topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${s.topP}`);
  const n = logits.length;
  const scaled = Float64Array.from({ length: n }, (_, i) => logits[i] / s.temperature);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scaled[b] - scaled[a] || a - b);
  const max = scaled[order[0]];
  const probs = order.map((i) => Math.exp(scaled[i] - max));
  const total = probs.reduce((a, b) => a + b, 0);
  // keep the smallest prefix (in descending order) whose mass reaches top_p; always at least one token
  let keep = 0,
    mass = 0;
  while (keep < n && (keep === 0 || mass < s.topP)) mass += probs[keep++] / total;
  const keptMass = probs.slice(0, keep).reduce((a, b) => a + b, 0);
  let u = rng.uniform() * keptMass;
  for (let j = 0; j < keep; j++) {
    u -= probs[j];
    if (u < 0) return order[j];
  }
  return order[keep - 1];
}

function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

/**
 * Beam search as transformers' BeamSearchScorer with its defaults (length_penalty 1, early_stopping
 * false): each step keeps the best K of 2K candidates; a candidate ending in EOS among the top K becomes
 * a finished hypothesis scored sum_logprobs / generated_length^penalty (EOS counted in the length);
 * the search stops when no running beam can beat the worst of K finished ones, or at max length, where
 * the running beams are finalised the same way. Returns the best hypothesis.
 */
function beamSearch(model: LlamaModel, prompt: number[], opts: GenerateOptions, K: number): number[] {
  if (!Number.isInteger(K) || K < 1) throw new Error(`beam search needs a positive integer number of beams, got ${K}`);
  const lp = (opts.strategy as { lengthPenalty?: number }).lengthPenalty ?? 1;
  const cache = model.newCache(K, prompt.length + opts.maxNewTokens);
  const ids = new Int32Array(K * prompt.length);
  for (let b = 0; b < K; b++) ids.set(prompt, b * prompt.length);
  // the K rows are the same prompt: all but its last token are computed once
  const sharedPrefix = K > 1 ? sharedPromptPrefix(Array.from({ length: K }, () => prompt)) : 0;
  let logits = model.forwardCached(ids, K, prompt.length, cache, { lastOnly: true, sharedPrefix });
  let beams: { tokens: number[]; score: number }[] = Array.from({ length: K }, (_, b) => ({ tokens: [], score: b === 0 ? 0 : -1e9 }));
  const finished: { tokens: number[]; score: number }[] = [];
  const worstFinished = () => Math.min(...finished.map((h) => h.score));
  const addFinished = (tokens: number[], sumLogprobs: number, length: number) => {
    const score = sumLogprobs / length ** lp;
    if (finished.length < K || score > worstFinished()) {
      finished.push({ tokens, score });
      finished.sort((a, b) => b.score - a.score);
      if (finished.length > K) finished.pop();
    }
  };
  for (let step = 0; step < opts.maxNewTokens; step++) {
    const V = logits.shape[2];
    const data = logits.contiguousData();
    const cand: { beam: number; token: number; score: number }[] = [];
    for (let b = 0; b < K; b++) {
      const lsm = logSoftmax(data.subarray(b * V, (b + 1) * V));
      for (let t = 0; t < V; t++) cand.push({ beam: b, token: t, score: beams[b].score + lsm[t] });
    }
    cand.sort((x, y) => y.score - x.score || x.beam * V + x.token - (y.beam * V + y.token));
    const top = cand.slice(0, 2 * K);
    const genLen = step + 1;
    const next: { tokens: number[]; score: number; beam: number; token: number }[] = [];
    for (let rank = 0; rank < top.length && next.length < K; rank++) {
      const c = top[rank];
      if (opts.eosIds.includes(c.token)) {
        if (rank < K) addFinished(beams[c.beam].tokens, c.score, genLen);
      } else {
        next.push({ tokens: [...beams[c.beam].tokens, c.token], score: c.score, beam: c.beam, token: c.token });
      }
    }
    const best = top[0].score;
    if (finished.length >= K && worstFinished() >= best / genLen ** lp) return finished[0].tokens;
    beams = next;
    if (step === opts.maxNewTokens - 1) break;
    cache.reorder(next.map((n) => n.beam));
    logits = model.forwardCached(Int32Array.from(next.map((n) => n.token)), K, 1, cache);
  }
  for (const b of beams) addFinished(b.tokens, b.score, b.tokens.length);
  return finished.length ? finished[0].tokens : [];
}
