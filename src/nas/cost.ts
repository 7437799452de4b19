/**
 * Cost of the model at its active configuration: parameters (total and non-zero), multiply-accumulates
 * for a 1×L input, and measured latency (prefill of L tokens, per-token decode) on this machine.
 *
 * One cost definition (CostDefinition) is used by the search objective, best.json/pareto.json, the charts and
 * the results table: the model as it ships — merged (adapters folded into the weights, so their ranks add
 * neither parameters nor MACs) or unmerged (the adapter path counted) — for one stated sequence length.
 *
 * MACs count every linear layer (base + adapter path when unmerged), the two attention products at full L×L per head
 * (QKᵀ and PV, as fvcore/thop-style counters do; causal masking is not subtracted) and the LM head.
 * Norms, RoPE, softmax and the element-wise ops are not counted (a few % of the total).
 */
import { performance } from 'node:perf_hooks';
import { LoraLinear, PLAIN_LORA } from '../adapters/lora.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { PROJECTIONS, baseLinearOf } from '../models/llama/model.ts';

/** What a cost counts: the model merged or with its adapters unmerged, for a forward pass over 1×seqLen tokens. */
export interface CostDefinition {
  merged: boolean;
  seqLen: number;
}

/** The definition as words for axis labels and notes: "merged, 1×64 forward". */
export function costDefinitionLabel(d: CostDefinition): string {
  return `${d.merged ? 'merged' : 'adapter unmerged'}, 1×${d.seqLen} forward`;
}

export interface ParamCount {
  total: number;
  nonZero: number;
  /** of which in adapters (unmerged) */
  adapter: number;
}

/**
 * Parameters of one projection at its active sizes, from the weight's shape and stored values (a bf16 weight's
 * bits): nothing is widened. Unmerged, the adapter path counts at its active rank.
 */
export function countModule(m: LinearLike, merged = false): ParamCount {
  const base = baseLinearOf(m, 'countParams');
  const b = base.bias;
  const o = m.outFeatures,
    i = m.inFeatures;
  let total = o * i + (b ? o : 0);
  let biasNonZero = 0;
  if (b) for (let k = 0; k < o; k++) if (b.data[k] !== 0) biasNonZero++;
  let nonZero = base.weightStore.nonZero(o, i) + biasNonZero;
  let adapter = 0;
  if (merged) {
    // a plain LoRA update B·A is dense: merged, it fills the base's zeros (the sparse variants keep the mask)
    if (m instanceof LoraLinear && m.activeRank > 0 && m.variant === PLAIN_LORA) nonZero = o * i + biasNonZero;
  } else if (m instanceof LoraLinear && m.activeRank > 0) {
    adapter = m.activeRank * (i + o);
    total += adapter;
    nonZero += adapter;
  }
  return { total, nonZero, adapter };
}

/** Parameters at the active configuration; `merged`: as the merged model has them (no adapter parameters). */
export function countParams(model: LlamaModel, merged = false): ParamCount {
  // a quantised head's zeros are counted as the projections' are
  const out = nonLayerParams(model.config, model.lmHead instanceof QuantLinear ? countModule(model.lmHead, merged).nonZero : undefined);
  for (const layer of model.layers) {
    for (const p of PROJECTIONS) {
      const n = countModule(layer.proj[p], merged);
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

/** MACs of a forward pass over one sequence of `seqLen` tokens at the active configuration (`merged`: no adapter path). */
export function countMacs(model: LlamaModel, seqLen: number, merged = false): number {
  return macsOfSizes(
    model.config,
    model.layers.map((l) => PROJECTIONS.map((p) => ({ ...moduleSize(l.proj[p]), ...(merged ? { rank: 0 } : {}) }))),
    seqLen,
  );
}

/** countMacs from sizes alone (per layer, the projections in PROJECTIONS order, q_proj first). */
export function macsOfSizes(c: LlamaConfig, layers: ModuleSize[][], seqLen: number): number {
  const L = seqLen;
  let macs = L * c.hiddenSize * c.vocabSize; // LM head
  for (const layer of layers) {
    for (const m of layer) macs += L * m.out * m.in + L * m.rank * (m.in + m.out);
    macs += 2 * L * L * layer[0].out; // QKᵀ and PV over heads · head_dim
  }
  return macs;
}

/** Parameters and MACs of the model at its active configuration under the definition `d`. */
export function countCost(model: LlamaModel, d: CostDefinition): { params: ParamCount; macs: number } {
  return { params: countParams(model, d.merged), macs: countMacs(model, d.seqLen, d.merged) };
}

/** Median and spread (min–max) of repeated timings (or of ratios of paired timings). */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

export function spread(xs: number[]): Spread {
  if (xs.length === 0) throw new Error('spread of no samples');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { min: s[0], median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, max: s[s.length - 1] };
}

export interface Latency {
  prefillMs: Spread;
  decodeMsPerToken: Spread;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** the timed runs, in order (one per round) */
  runs: { prefillMs: number; decodeMsPerToken: number }[];
}

/** Above this overhead share (overheadShare) reports say that per-call overhead dominates the timings. */
export const OVERHEAD_DOMINATES = 0.75;

/** Bytes per ms this machine copies from memory to memory: best of 3 copies of a 64 MB buffer (read + write counted). */
export function copyBytesPerMs(): number {
  const src = new Float32Array(16 << 20).fill(1),
    dst = new Float32Array(src.length);
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * src.byteLength) / Math.max(best, 1e-3);
}

/**
 * The share of a decode step that streaming the weights once does not explain: 1 − (4·params / bandwidth) / step
 * (float32 weights: an upper bound of what a step must read). A decode step of a large model is memory-bound, so
 * the share is small; near 1, the fixed per-call work (kernel calls, allocation, JS) dominates and the timings do
 * not follow the parameters or MACs — speed-ups of a smaller configuration then stay near 1.
 */
export function overheadShare(decodeMsPerToken: number, params: number, bytesPerMs: number): number {
  return Math.min(1, Math.max(0, 1 - (4 * params) / bytesPerMs / decodeMsPerToken));
}

export interface LatencyOptions {
  promptLen?: number;
  genLen?: number;
  repeats?: number;
  warmup?: number;
}

/**
 * Measured prefill of `promptLen` tokens and decode of `genLen` tokens for each model, interleaved: every round times each model once, in turn (A B A B …), so that a change
 * of machine load falls on all of them alike. Median and min–max over `repeats` rounds after `warmup` untimed ones.
 */
export function measureLatencies(models: LlamaModel[], opts: LatencyOptions = {}): Latency[] {
  const L = opts.promptLen ?? 256,
    N = opts.genLen ?? 32,
    repeats = opts.repeats ?? 5,
    warmup = opts.warmup ?? 1;
  for (const model of models)
    if (L + N > model.config.maxPositions)
      throw new Error(`latency: prompt ${L} + ${N} generated tokens exceed the model's ${model.config.maxPositions} positions`);
  const prompts = models.map((m) => Int32Array.from({ length: L }, (_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1))));
  const timed = models.map(() => [] as Latency['runs']);
  for (let r = 0; r < warmup + repeats; r++) {
    models.forEach((model, k) => {
      const ids = prompts[k];
      const cache = model.newCache(1, L + N);
      const t0 = performance.now();
      model.forwardCached(ids, 1, L, cache, { lastOnly: true });
      const t1 = performance.now();
      for (let j = 0; j < N; j++) model.forwardCached(Int32Array.of(ids[j % L]), 1, 1, cache);
      const t2 = performance.now();
      if (r >= warmup) timed[k].push({ prefillMs: t1 - t0, decodeMsPerToken: (t2 - t1) / Math.max(N, 1) });
    });
  }
  return timed.map((runs) => {
    const p = spread(runs.map((x) => x.prefillMs)),
      d = spread(runs.map((x) => x.decodeMsPerToken));
    return {
      prefillMs: p,
      decodeMsPerToken: d,
      prefillTokensPerSecond: (1000 * L) / p.median,
      decodeTokensPerSecond: 1000 / d.median,
      runs,
    };
  });
}

/** One model's latency (measureLatencies of one). */
export function measureLatency(model: LlamaModel, opts: LatencyOptions = {}): Latency {
  return measureLatencies([model], opts)[0];
}

/** Speed-up of `x` over `reference` from interleaved runs: the ratio reference/x of each round, median and min–max. */
export function speedupOf(reference: Latency, x: Latency): { prefill: Spread; decode: Spread } {
  if (reference.runs.length !== x.runs.length) throw new Error('speed-up: the two latencies were not measured in the same rounds');
  return {
    prefill: spread(x.runs.map((r, i) => reference.runs[i].prefillMs / r.prefillMs)),
    decode: spread(x.runs.map((r, i) => reference.runs[i].decodeMsPerToken / r.decodeMsPerToken)),
  };
}

/** True when the interval of a speed-up includes 1: no speed difference shown by the measurement. */
export function withinNoise(s: Spread): boolean {
  return s.min <= 1 && s.max >= 1;
}
