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
import type { LlamaConfig } from '../models/llama/config.ts';
import { PROJECTIONS } from '../models/llama/model.ts';

export interface ParamCount {
  total: number;
  nonZero: number;
  /** of which in adapters (unmerged) */
  adapter: number;
}

function activeSliceNonZero(data: ArrayLike<number>, ld: number, rows: number, cols: number): number {
  let n = 0;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (data[r * ld + c] !== 0) n++;
  return n;
}

/** Parameters of one projection at its active sizes (adapter path included at its active rank). */
export function countModule(m: LinearLike): ParamCount {
  const base = m instanceof LoraLinear ? m.base : m;
  const [w, b] = base.baseTensors();
  const o = m.outFeatures,
    i = m.inFeatures;
  let total = o * i + (b ? o : 0);
  let nonZero = activeSliceNonZero(w.data, w.shape[1], o, i) + (b ? activeSliceNonZero(b.data, o, 1, o) : 0);
  let adapter = 0;
  if (m instanceof LoraLinear && m.activeRank > 0) {
    adapter = m.activeRank * (i + o);
    total += adapter;
    nonZero += adapter;
  }
  return { total, nonZero, adapter };
}

export function countParams(model: LlamaModel): ParamCount {
  // a quantised head's zeros are counted as the projections' are
  const out = nonLayerParams(model.config, model.lmHead instanceof QuantLinear ? countModule(model.lmHead).nonZero : undefined);
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

/** The embedding, the norms and the LM head: dense, unless `headNonZero` says how many of a quantised head's weights are non-zero. */
export function nonLayerParams(c: LlamaConfig, headNonZero?: number): ParamCount {
  const emb = c.vocabSize * c.hiddenSize;
  const norms = c.hiddenSize * (2 * c.layers.length + 1);
  const head = c.tieWordEmbeddings ? 0 : emb;
  return { total: emb + norms + head, nonZero: emb + norms + (headNonZero ?? head), adapter: 0 };
}

/** A projection's active sizes for counting: out, in, adapter rank (0: no adapter, or off) and whether it has a bias. */
export interface ModuleSize {
  out: number;
  in: number;
  rank: number;
  bias: boolean;
}

/** The sizes of `m` as it is now (reads no weights); `bias` as the caller knows it (the weight table). */
export function moduleSize(m: LinearLike, bias = false): ModuleSize {
  return { out: m.outFeatures, in: m.inFeatures, rank: m instanceof LoraLinear ? m.activeRank : 0, bias };
}

/** Total and adapter parameters from sizes alone (per layer, the projections in PROJECTIONS order). */
export function paramsOfSizes(c: LlamaConfig, layers: ModuleSize[][]): { total: number; adapter: number } {
  let { total } = nonLayerParams(c),
    adapter = 0;
  for (const m of layers.flat()) {
    total += m.out * m.in + (m.bias ? m.out : 0) + m.rank * (m.in + m.out);
    adapter += m.rank * (m.in + m.out);
  }
  return { total, adapter };
}

/** MACs of a forward pass over one sequence of `seqLen` tokens at the active configuration. */
export function countMacs(model: LlamaModel, seqLen = 256): number {
  return macsOfSizes(
    model.config,
    model.layers.map((l) => PROJECTIONS.map((p) => moduleSize(l.proj[p]))),
    seqLen,
  );
}

/** countMacs from sizes alone (per layer, the projections in PROJECTIONS order, q_proj first). */
export function macsOfSizes(c: LlamaConfig, layers: ModuleSize[][], seqLen = 256): number {
  const L = seqLen;
  let macs = L * c.hiddenSize * c.vocabSize; // LM head
  for (const layer of layers) {
    for (const m of layer) macs += L * m.out * m.in + L * m.rank * (m.in + m.out);
    macs += 2 * L * L * layer[0].out; // QKᵀ and PV over heads · head_dim
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
