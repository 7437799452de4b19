/**
 * Log-likelihood of continuations after a prompt, batched, with each prompt run once for all its options:
 * 1. the prompts (left-padded) run as one batch through the KV cache; the last position's logits score every
 *    option's first token;
 * 2. the cache rows are copied to one row per (prompt, option) and the options' tokens run as a second,
 *    right-padded batch (causal attention: padding at the right is never seen by real tokens).
 * The result equals scoring each prompt + option sequence on its own (test/eval/loglik.test.ts checks this
 * against model.forward).
 *
 * Tokenisation: a continuation's tokens are those of encode(prompt + continuation) after the prefix it shares
 * with encode(prompt) — all options of one prompt are split at the same point (the shortest shared prefix),
 * so no option gains or loses a boundary token (SentencePiece may merge across the prompt/continuation seam).
 */
import type { LlamaModel } from '../models/llama/model.ts';
import type { KvCache } from '../models/llama/kv-cache.ts';
import type { Scored } from './backend.ts';

export interface TokenizedChoice {
  /** encode(prompt) */
  prompt: number[];
  /** encode(prompt + continuation) for each continuation */
  full: number[][];
}

/** Logits kept per forward of the second pass (rows × positions × vocab floats). */
const LOGIT_BUDGET = 1 << 25;

export function scoreContinuations(model: LlamaModel, items: TokenizedChoice[]): Scored[] {
  const maxPos = model.config.maxPositions;
  const out: Scored[] = new Array(items.length);
  const active: Active[] = [];
  items.forEach((item, index) => {
    if (item.full.length === 0) throw new Error('scoreContinuations: an example with no continuations');
    let m = item.prompt.length;
    for (const f of item.full) m = Math.min(m, commonPrefix(item.prompt, f), f.length - 1);
    if (m < 1) {
      throw new Error(
        'cannot score a continuation that starts the sequence (the tokenizer adds no BOS and the prompt is empty or merges with it)',
      );
    }
    const conts = item.full.map((f) => f.slice(m));
    const longest = m + Math.max(...conts.map((c) => c.length));
    if (longest > maxPos) {
      out[index] = {
        scores: conts.map((c) => ({ logprob: Number.NaN, tokens: c.length })),
        skipped: true,
        note: `prompt + option is ${longest} tokens, more than the model's ${maxPos} positions; not scored (counted wrong)`,
      };
    } else active.push({ index, prefix: item.full[0].slice(0, m), conts });
  });
  // each group must fit the cache as padded: longest prompt + longest option ≤ the context
  let group: Active[] = [];
  let T = 0,
    L = 0;
  for (const a of active) {
    const t = Math.max(T, a.prefix.length),
      l = Math.max(L, ...a.conts.map((c) => c.length - 1));
    if (group.length && t + l > maxPos) {
      scoreGroup(model, group, out);
      group = [];
      T = a.prefix.length;
      L = Math.max(...a.conts.map((c) => c.length - 1));
    } else {
      T = t;
      L = l;
    }
    group.push(a);
  }
  if (group.length) scoreGroup(model, group, out);
  return out;
}

interface Active {
  index: number;
  prefix: number[];
  conts: number[][];
}

function scoreGroup(model: LlamaModel, active: Active[], out: Scored[]): void {
  // 1. prompts, left-padded
  const A = active.length;
  const T = Math.max(...active.map((a) => a.prefix.length));
  const ids = new Int32Array(A * T);
  const keyStart = new Int32Array(A);
  const positions = new Int32Array(A * T);
  active.forEach((a, b) => {
    const pad = T - a.prefix.length;
    keyStart[b] = pad;
    ids.set(a.prefix, b * T + pad);
    for (let t = 0; t < T; t++) positions[b * T + t] = Math.max(0, t - pad);
  });
  const anyPad = keyStart.some((s) => s > 0);
  const cache1 = model.newCache(A, T);
  const first = model.forwardCached(ids, A, T, cache1, { positions, keyStart: anyPad ? keyStart : null, lastOnly: true });
  const V = first.shape[2];
  const firstData = first.contiguousData();
  const logprobs = active.map((a, b) => a.conts.map((c) => [tokenLogprob(firstData, b * V, V, c[0])]));

  // 2. the options' remaining tokens, one row per (prompt, option), right-padded
  const rows: { b: number; o: number; toks: number[] }[] = [];
  active.forEach((a, b) =>
    a.conts.forEach((c, o) => {
      if (c.length > 1) rows.push({ b, o, toks: c.slice(0, -1) });
    }),
  );
  const L = rows.length ? Math.max(...rows.map((r) => r.toks.length)) : 0;
  const perChunk = Math.max(1, Math.floor(LOGIT_BUDGET / Math.max(1, L * V)));
  for (let start = 0; start < rows.length; start += perChunk) {
    const chunk = rows.slice(start, start + perChunk);
    const R = chunk.length;
    const cache2 = model.newCache(R, T + L);
    copyRows(
      cache1,
      cache2,
      chunk.map((r) => r.b),
    );
    const ids2 = new Int32Array(R * L);
    const pos2 = new Int32Array(R * L);
    const ks2 = new Int32Array(R);
    chunk.forEach((r, k) => {
      ids2.set(r.toks, k * L);
      ks2[k] = keyStart[r.b];
      for (let t = 0; t < L; t++) pos2[k * L + t] = T - keyStart[r.b] + t;
    });
    const logits = model.forwardCached(ids2, R, L, cache2, { positions: pos2, keyStart: anyPad ? ks2 : null });
    const data = logits.contiguousData();
    chunk.forEach((r, k) => {
      const cont = active[r.b].conts[r.o];
      for (let t = 1; t < cont.length; t++) logprobs[r.b][r.o].push(tokenLogprob(data, (k * L + t - 1) * V, V, cont[t]));
    });
  }
  active.forEach((a, b) => {
    out[a.index] = { scores: a.conts.map((c, o) => ({ logprob: logprobs[b][o].reduce((x, y) => x + y, 0), tokens: c.length })) };
  });
}

function commonPrefix(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** log softmax(row)[target] in float64, for the row of V logits starting at `offset`. */
function tokenLogprob(data: ArrayLike<number>, offset: number, V: number, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (data[offset + i] > max) max = data[offset + i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(data[offset + i] - max);
  return data[offset + target] - max - Math.log(sum);
}

/** dst row k = src row rows[k], for the positions src holds. */
function copyRows(src: KvCache, dst: KvCache, rows: number[]): void {
  for (let l = 0; l < src.k.length; l++) {
    const used = src.length * src.kvHeads[l] * src.headDim;
    const s = src.rowStride(l),
      d = dst.rowStride(l);
    rows.forEach((b, k) => {
      dst.k[l].set(src.k[l].subarray(b * s, b * s + used), k * d);
      dst.v[l].set(src.v[l].subarray(b * s, b * s + used), k * d);
    });
  }
  dst.length = src.length;
}
