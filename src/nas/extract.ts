/**
 * Physical extraction of a sub-network (spec.md §5): the active slices of every base weight and adapter
 * become a real, smaller model. Per-layer sizes go into config.json (`lonas_layers`), so lonas loads the
 * result anywhere a model is accepted.
 *  - merged:   W' = W[:o', :i'] + s · B[:o', :r'] A[:r', :i']  → a plain model directory
 *  - unmerged: the sliced base model + a sliced PEFT adapter (adapter/), with per-module ranks in
 *              `rank_pattern` and `alpha_pattern` chosen so that alpha'/r' = alpha/r_max (same scaling).
 * Slices are the first channels of the model as it is in memory: for an adapter trained on importance-
 * reordered MLP channels, loadAdapter has already permuted the base, so the kept channels are the important
 * ones and the written model stores them in that order (its adapter needs no channel order).
 */
import { join, resolve } from 'node:path';
import { Tensor, noGrad } from '../tensor/index.ts';
import { LlamaModel, PROJECTIONS, projectionWeightName } from '../models/llama/model.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { copyTokenizerFiles, saveModelDir } from '../models/llama/checkpoint.ts';
import type { WeightDType } from '../models/llama/checkpoint.ts';
import { LoraLinear, withAdaptersOff } from '../adapters/lora.ts';
import { ElasticLinear } from '../adapters/elastic.ts';
import { adapterBaseRecord, loraModules, savePeftAdapter } from '../adapters/peft.ts';
import type { AdapterEntry } from '../adapters/peft.ts';
import type { AdapterMode } from '../adapters/lora.ts';
import { QaSparsePeft } from '../adapters/sqft.ts';
import type { Linear, LinearLike } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import { dequantize, quantCode } from '../nn/quantized-weight.ts';
import type { QuantizedWeight } from '../nn/quantized-weight.ts';

export interface ExtractOptions {
  merge: boolean;
  /** the source model directory: tokenizer files and unknown config fields are carried over */
  sourceDir?: string;
  hfConfig?: Record<string, unknown>;
  dtype?: WeightDType;
  /** more files written into the new directory before it replaces the target, given the extracted model and its adapter directory */
  finish?: (tmpDir: string, extracted: LlamaModel, adapterDir: string | null) => void;
}

/** Copies the active (o', i') slice of a stored (out, in) weight. */
function sliceWeight(w: Tensor, o: number, i: number): Float32Array {
  const inF = w.shape[1];
  const out = new Float32Array(o * i);
  for (let r = 0; r < o; r++) out.set(w.data.subarray(r * inF, r * inF + i), r * i);
  return out;
}

/** The sizes the model currently runs with (as set by applySubnet). */
export function activeConfig(model: LlamaModel): LlamaConfig {
  const D = model.config.headDim;
  return {
    ...model.config,
    layers: model.layers.map((l) => ({
      intermediateSize: l.proj.gate_proj.outFeatures,
      numHeads: l.proj.q_proj.outFeatures / D,
      numKvHeads: l.proj.k_proj.outFeatures / D,
    })),
  };
}

/**
 * A new, physically smaller model equal to `model` at its active configuration (adapters merged).
 * Quantised projections stay quantised when kept whole: a GPTQ base keeps its codes, and a QA-SparsePEFT
 * adapter is merged onto the INT4 grid (codes of W + ΔW ⊙ M with the base's scales and zeros). A sliced
 * quantised projection is written in float. A quantised LM head (never sliced, never adapted) stays quantised.
 */
export function extractMerged(model: LlamaModel): LlamaModel {
  const weights = new Map<string, Tensor>();
  const quantized = new Map<string, QuantizedWeight>();
  for (const [name, t] of model.namedParameters()) weights.set(name, t); // embeddings, norms, head: unchanged
  model.layers.forEach((layer, layerIndex) => {
    for (const p of PROJECTIONS) {
      const name = projectionWeightName(layerIndex, p);
      const { weight, bias, qw } = extractProjection(layer.proj[p]);
      weights.set(`${name}.weight`, new Tensor(weight, [layer.proj[p].outFeatures, layer.proj[p].inFeatures], { name: `${name}.weight` }));
      if (bias) weights.set(`${name}.bias`, new Tensor(bias, [bias.length]));
      if (qw) quantized.set(`${name}.weight`, qw);
    }
  });
  const out = new LlamaModel(activeConfig(model), weights);
  out.layers.forEach((layer, i) => {
    for (const p of PROJECTIONS) {
      const qw = quantized.get(`${projectionWeightName(i, p)}.weight`);
      if (qw) layer.proj[p] = new QuantLinear(layer.proj[p] as Linear, qw);
    }
  });
  if (model.lmHead instanceof QuantLinear) out.lmHead = new QuantLinear(out.lmHead as Linear, model.lmHead.qw);
  return out;
}

/**
 * One projection at its active sizes, adapter merged: weight (o', i') = W[:o', :i'] + s·B A (masked by the
 * variant), bias (o'), and its GPTQ form when it stays quantised (kept whole; `weight` then holds the
 * dequantised codes). Used per projection by the in-memory extraction and the layer-streamed one alike.
 */
export function extractProjection(m: LinearLike): { weight: Float32Array; bias: Float32Array | null; qw: QuantizedWeight | null } {
  const stored = m instanceof ElasticLinear ? m.stored : m;
  const base = m instanceof LoraLinear ? m.base : m;
  const [w, b] = base.baseTensors();
  const o = m.outFeatures,
    i = m.inFeatures;
  const whole = o === w.shape[0] && i === w.shape[1];
  const data = sliceWeight(w, o, i);
  if (m instanceof LoraLinear) {
    const delta = m.deltaWeight();
    for (let k = 0; k < data.length; k++) data[k] += delta[k];
  }
  const qw =
    stored instanceof QuantLinear
      ? stored.qw
      : m instanceof LoraLinear && m.variant instanceof QaSparsePeft && m.baseQuant
        ? requantize(m.baseQuant, data)
        : null;
  const kept = qw && whole ? qw : null;
  if (kept) data.set(dequantize(kept));
  return { weight: data, bias: b ? Float32Array.from(b.data.subarray(0, o)) : null, qw: kept };
}

/** New codes for merged float weights on the base's fixed INT4 grid (QA-SparsePEFT merge). */
function requantize(base: QuantizedWeight, merged: Float32Array): QuantizedWeight {
  const { out, inF, scales, zeros, gIdx, bits } = base;
  const q = new Uint8Array(out * inF),
    maxq = 2 ** bits - 1;
  for (let o = 0; o < out; o++)
    for (let j = 0; j < inF; j++) {
      const g = gIdx[j] * out + o;
      q[o * inF + j] = quantCode(merged[o * inF + j], scales[g], zeros[g], maxq);
    }
  return { ...base, q };
}

/** Writes the extracted model (and, unmerged, its sliced adapter under `<outDir>/adapter`), all of it appearing at once. */
export function extractToDir(model: LlamaModel, outDir: string, o: ExtractOptions): { config: LlamaConfig; adapterDir: string | null } {
  const loras = loraModules(model);
  const unmerged = !o.merge && loras.length > 0;
  if (unmerged) refuseSlicedQa(loras);
  // unmerged: slice the base with the adapters switched off, then write the sliced adapters beside it
  const smaller = unmerged ? withAdaptersOff(loras, () => extractMerged(model)) : noGrad(() => extractMerged(model));
  const adapters = unmerged ? loras.filter((l) => l.activeRank > 0).map((l) => slicedAdapter(l)) : null;
  const adapterDir = adapters ? join(outDir, 'adapter') : null;
  saveModelDir(outDir, smaller, {
    hfConfig: o.hfConfig,
    dtype: o.dtype,
    overwrite: true,
    finish: (tmp) => {
      finishExtract(tmp, outDir, o.sourceDir, adapters && { entries: adapters, mode: loras[0].variant.mode });
      o.finish?.(tmp, smaller, adapterDir);
    },
  });
  return { config: smaller.config, adapterDir };
}

/**
 * A QA-SparsePEFT adapter acts through its base's INT4 grid: a sliced quantised projection is written in
 * float, so the sliced adapter could not compute the same function on it; refused before anything is written.
 */
export function refuseSlicedQa(loras: LoraLinear[]): void {
  const slicedQa = loras.find((l) => l.variant.mode === 'qa' && (l.activeOut < l.outFeatures || l.activeIn < l.inFeatures));
  if (slicedQa)
    throw new Error(
      `${slicedQa.name}: a QA-SparsePEFT adapter on a sliced INT4 projection cannot be extracted unmerged (the slice is written in float); extract with --merge, which writes the INT4 merge`,
    );
}

/**
 * The files beside the extracted weights, written into the new directory `tmp` before it becomes `outDir`:
 * the source's tokenizer files and, unmerged, the sliced adapter (its variant — plain / SparsePEFT / QA —
 * travels with it, so it reloads computing the same function; its base record names `outDir`).
 */
export function finishExtract(
  tmp: string,
  outDir: string,
  sourceDir: string | undefined,
  adapter: { entries: AdapterEntry[]; mode: AdapterMode } | null,
): void {
  if (sourceDir) copyTokenizerFiles(sourceDir, tmp);
  if (adapter)
    savePeftAdapter(join(tmp, 'adapter'), adapter.entries, {
      baseModel: outDir,
      base: { ...adapterBaseRecord(tmp), model: resolve(outDir) },
      mode: adapter.mode,
    });
}

/** The active slices of one adapter: A (r', i'), B (o', r'), with alpha' = alpha · r'/r_max (same scaling). */
export function slicedAdapter(l: LoraLinear): AdapterEntry {
  const r = l.activeRank,
    o = l.activeOut,
    i = l.activeIn;
  const a = sliceWeight(l.loraA, r, i);
  const b = new Float32Array(o * r);
  for (let row = 0; row < o; row++) b.set(l.loraB.data.subarray(row * l.rMax, row * l.rMax + r), row * r);
  return { name: l.name, a: new Tensor(a, [r, i]), b: new Tensor(b, [o, r]), rank: r, alpha: (l.alpha * r) / l.rMax, dropout: l.dropoutP };
}
