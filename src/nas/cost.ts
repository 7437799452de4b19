/**
 * Cost of the model at its active configuration: parameters (total and non-zero), multiply-accumulates
 * for a 1×L input, and measured latency (prefill of L tokens, per-token decode) on this machine.
 *
 * MACs count every linear layer (base + adapter path), the two attention products at full L×L per head
 * (QKᵀ and PV, as fvcore/thop-style counters do; causal masking is not subtracted) and the LM head.
 * Norms, RoPE, softmax and the element-wise ops are not counted (a few % of the total).
 */
import { performance } from 'node:perf_hooks';
import { LoraLinear } from '../adapters/lora.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { PROJECTIONS, baseLinearOf } from '../models/llama/model.ts';

export interface ParamCount {
  total: number;
  nonZero: number;
  /** of which in adapters (unmerged) */
  adapter: number;
}

/** Counts from the weight's shape and stored values (a bf16 weight's bits): nothing is widened. */
function countModule(m: LinearLike): ParamCount {
  const base = baseLinearOf(m, 'countParams');
  const b = base.bias;
  const o = m.outFeatures,
    i = m.inFeatures;
  let total = o * i + (b ? o : 0);
  let nonZero = base.weightStore.nonZero(o, i);
  if (b) for (let k = 0; k < o; k++) if (b.data[k] !== 0) nonZero++;
  let adapter = 0;
  if (m instanceof LoraLinear && m.activeRank > 0) {
    adapter = m.activeRank * (i + o);
    total += adapter;
    nonZero += adapter;
  }
  return { total, nonZero, adapter };
}

export function countParams(model: LlamaModel): ParamCount {
  const c = model.config;
  const emb = c.vocabSize * c.hiddenSize;
  const norms = c.hiddenSize * (2 * c.layers.length + 1);
  const head = c.tieWordEmbeddings ? 0 : emb;
  // embedding, norms and a float head are dense; a quantised head's zeros are counted as the projections' are
  const headNonZero = model.lmHead instanceof QuantLinear ? countModule(model.lmHead).nonZero : head;
  const out: ParamCount = { total: emb + norms + head, nonZero: emb + norms + headNonZero, adapter: 0 };
  for (const layer of model.layers) {
    for (const p of PROJECTIONS) {
      const n = countModule(layer.proj[p]);
      out.total += n.total;
      out.nonZero += n.nonZero;
      out.adapter += n.adapter;
    }
  }
  return out;
}

/** MACs of a forward pass over one sequence of `seqLen` tokens at the active configuration. */
export function countMacs(model: LlamaModel, seqLen = 256): number {
  const c = model.config,
    L = seqLen;
  let macs = L * c.hiddenSize * c.vocabSize; // LM head
  for (const layer of model.layers) {
    for (const p of PROJECTIONS) {
      const m = layer.proj[p];
      macs += L * m.outFeatures * m.inFeatures;
      if (m instanceof LoraLinear && m.activeRank > 0) macs += L * m.activeRank * (m.inFeatures + m.outFeatures);
    }
    const attnWidth = layer.proj.q_proj.outFeatures; // heads · head_dim
    macs += 2 * L * L * attnWidth; // QKᵀ and PV
  }
  return macs;
}

export interface Latency {
  prefillMs: { min: number; median: number };
  decodeMsPerToken: { min: number; median: number };
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/** Measured prefill of `promptLen` tokens and greedy-style decode of `genLen` tokens, min/median over repeats. */
export function measureLatency(
  model: LlamaModel,
  opts: { promptLen?: number; genLen?: number; repeats?: number; warmup?: number } = {},
): Latency {
  const L = opts.promptLen ?? 256,
    N = opts.genLen ?? 32,
    repeats = opts.repeats ?? 5,
    warmup = opts.warmup ?? 1;
  if (L + N > model.config.maxPositions)
    throw new Error(`latency: prompt ${L} + ${N} generated tokens exceed the model's ${model.config.maxPositions} positions`);
  const ids = Int32Array.from({ length: L }, (_, i) => 1 + ((i * 7919) % (model.config.vocabSize - 1)));
  const prefill: number[] = [],
    decode: number[] = [];
  for (let r = 0; r < warmup + repeats; r++) {
    const cache = model.newCache(1, L + N);
    const t0 = performance.now();
    model.forwardCached(ids, 1, L, cache, { lastOnly: true });
    const t1 = performance.now();
    for (let k = 0; k < N; k++) model.forwardCached(Int32Array.of(ids[k % L]), 1, 1, cache);
    const t2 = performance.now();
    if (r >= warmup) {
      prefill.push(t1 - t0);
      decode.push((t2 - t1) / Math.max(N, 1));
    }
  }
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { min: s[0], median: s[Math.floor(s.length / 2)] };
  };
  const p = stats(prefill),
    d = stats(decode);
  return { prefillMs: p, decodeMsPerToken: d, prefillTokensPerSecond: (1000 * L) / p.median, decodeTokensPerSecond: 1000 / d.median };
}
