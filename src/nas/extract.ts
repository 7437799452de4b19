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
import { LlamaModel, PROJECTIONS, baseLinearOf, projectionWeightName } from '../models/llama/model.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { copyTokenizerFiles, saveModelDir } from '../models/llama/checkpoint.ts';
import type { WeightDType } from '../models/llama/checkpoint.ts';
import { LoraLinear, withAdaptersOff } from '../adapters/lora.ts';
import { ElasticLinear } from '../adapters/elastic.ts';
import { adapterBaseRecord, loraModules, savePeftAdapter } from '../adapters/peft.ts';
import type { AdapterEntry } from '../adapters/peft.ts';
import type { AdapterMode } from '../adapters/lora.ts';
import type { Linear, LinearLike } from '../nn/modules.ts';
import type { RequantizationRecord } from '../io/artifacts.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import { dequantize, noRequantStats, requantize, sliceHasLayout, sliceQuantized, zeroWeights } from '../nn/quantized-weight.ts';
import type { QuantGrid, QuantizedWeight, RequantStats } from '../nn/quantized-weight.ts';

export interface ExtractOptions {
  merge: boolean;
  /** the source model directory: tokenizer files and unknown config fields are carried over */
  sourceDir?: string;
  hfConfig?: Record<string, unknown>;
  dtype?: WeightDType;
  /** write a GPTQ base's weights in float (`dtype`) instead of on its INT4 grid */
  dequantize?: boolean;
  /** more files written into the new directory before it replaces the target, given what was extracted and its adapter directory */
  finish?: (tmpDir: string, extracted: MergedSubnet, adapterDir: string | null) => void;
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

/** What a merge onto a GPTQ base's grid changed (null in a report: nothing was requantised). */
export interface Requantization extends RequantStats {
  /** projections that carry an adapter and were requantised onto the base's grid */
  projections: number;
}

export interface MergedSubnet {
  model: LlamaModel;
  /** what requantising adapted projections onto a GPTQ base's grid changed; null when none was */
  requantization: Requantization | null;
  /** GPTQ module → its weights that were exactly 0 and are not in the output (moved off the zero point, or sliced away) */
  zerosLost: Map<string, number>;
}

/**
 * A new, physically smaller model equal to `model` at its active configuration (adapters merged).
 * A GPTQ base keeps its format: every quantised projection is written on the base's own grid (its scales,
 * zeros and g_idx, sliced to the active widths), its codes as they are without an adapter, else the codes of
 * the merged float weight W + ΔW (a QA-SparsePEFT adapter trained for exactly these; a plain LoRA adapter
 * gains a rounding error, reported in `requantization`). A quantised LM head (never sliced, never adapted)
 * stays quantised. `dequantize` writes every weight in float instead.
 */
export function mergeSubnet(model: LlamaModel, opts: { dequantize?: boolean } = {}): MergedSubnet {
  // embeddings, norms, head: unchanged, bf16 weights kept bf16 (the source model is not widened)
  const weights = model.storedParameters();
  const zerosLost = new Map<string, number>();
  const quantized = new Map<string, QuantizedWeight>();
  const stats: Requantization = { ...noRequantStats(), projections: 0 };
  model.layers.forEach((layer, layerIndex) => {
    for (const p of PROJECTIONS) {
      const m: LinearLike = layer.proj[p];
      const name = projectionWeightName(layerIndex, p);
      const base = baseLinearOf(m, p);
      const bits = base.weightStore.bf16,
        b = base.bias;
      if (bits && !(m instanceof LoraLinear && m.activeRank > 0) && !gridOf(m)) {
        // a bf16 slice with nothing added stays bf16 (the source model is not widened)
        weights.set(`${name}.weight`, bits.leading(m.outFeatures, m.inFeatures));
        if (b) weights.set(`${name}.bias`, new Tensor(b.data.slice(0, m.outFeatures), [m.outFeatures]));
        continue;
      }
      const { weight, bias, qw, zerosLost: lost } = extractProjection(m, name, stats, opts.dequantize);
      weights.set(`${name}.weight`, new Tensor(weight, [m.outFeatures, m.inFeatures], { name: `${name}.weight` }));
      if (bias) weights.set(`${name}.bias`, new Tensor(bias, [bias.length]));
      if (qw) quantized.set(`${name}.weight`, qw);
      if (lost) zerosLost.set(name, lost);
    }
  });
  const config = activeConfig(model);
  if (opts.dequantize) config.quantization = null;
  const out = new LlamaModel(config, weights);
  out.layers.forEach((layer, i) => {
    for (const p of PROJECTIONS) {
      const qw = quantized.get(`${projectionWeightName(i, p)}.weight`);
      if (qw) layer.proj[p] = new QuantLinear(layer.proj[p] as Linear, qw);
    }
  });
  if (model.lmHead instanceof QuantLinear && !opts.dequantize) out.lmHead = new QuantLinear(out.lmHead as Linear, model.lmHead.qw);
  return { model: out, requantization: stats.projections ? stats : null, zerosLost };
}

/** The record of a requantisation (lonas_compression.json, lonas_extract.json, lonas_merge.json). */
export function requantizationRecord(r: Requantization): RequantizationRecord {
  return {
    projections: r.projections,
    weights: r.weights,
    codes_changed: r.codesChanged,
    max_abs_error: r.maxAbsError,
    mean_abs_error: r.sumAbsError / r.weights,
  };
}

/** One line saying what the merge onto the INT4 grid cost, and `alternative`: the way to the float merge. */
export function describeRequantization(r: Requantization, alternative = '--dequantize writes the float merge'): string {
  return (
    `kept INT4 on the base's GPTQ grid: ${r.projections} adapted projections requantised, ${r.codesChanged} of ${r.weights} codes changed; ` +
    `added error |requantised − float merge| max ${r.maxAbsError.toExponential(3)}, mean ${(r.sumAbsError / r.weights).toExponential(3)} (${alternative})` +
    (r.codesChanged === 0 ? "; no code changed: the merged model is the base, the adapter's update is below the grid's resolution" : '')
  );
}

/** The GPTQ grid of projection `m` (its base's), or null for a float projection. */
function gridOf(m: LinearLike): QuantizedWeight | null {
  const stored = m instanceof ElasticLinear ? m.stored : m;
  return stored instanceof QuantLinear ? stored.qw : m instanceof LoraLinear ? m.baseQuant : null;
}

/**
 * One projection (weight `name`) at its active sizes, adapter merged: weight (o', i') = W[:o', :i'] + s·B A
 * (masked by the variant) and bias (o'). On a GPTQ base (unless `dequantize`) also its GPTQ form `qw` on the
 * base's own grid sliced to (o', i'): the base's codes without an adapter, else the codes of the merged float
 * weight (what that cost is added to `stats`), `weight` then holding the dequantised codes; `zerosLost`: the
 * base's exact zeros that are not in `qw`. Used per projection by the in-memory extraction and the
 * layer-streamed one alike.
 */
export function extractProjection(
  m: LinearLike,
  name: string,
  stats: Requantization,
  dequantizeBase = false,
): { weight: Float32Array; bias: Float32Array | null; qw: QuantizedWeight | null; zerosLost: number } {
  const base = baseLinearOf(m, name);
  const bits = base.weightStore.bf16,
    b = base.bias;
  const o = m.outFeatures,
    i = m.inFeatures;
  // a new float32 array either way; a bf16 base is widened for this slice only
  const data = bits ? (bits.leading(o, i).toTensor().data as Float32Array) : sliceWeight(base.weight, o, i);
  const adapted = m instanceof LoraLinear && m.activeRank > 0;
  if (adapted) {
    const delta = m.deltaWeight();
    for (let k = 0; k < data.length; k++) data[k] += delta[k];
  }
  const bias = b ? Float32Array.from(b.data.subarray(0, o)) : null;
  const grid = gridOf(m);
  if (!grid || dequantizeBase) return { weight: data, bias, qw: null, zerosLost: 0 };
  const sliced = sliceQuantized(grid, o, i);
  if (!sliced) throw noGptqLayout(name, o, i, grid);
  const qw = adapted ? requantize(sliced, data, stats) : sliced;
  if (adapted) stats.projections++;
  data.set(dequantize(qw));
  return { weight: data, bias, qw, zerosLost: zeroWeights(grid) - zeroWeights(grid, qw) };
}

/** The error of an act-order GPTQ weight `name` whose (o, i) slice has no GPTQ layout. */
export function noGptqLayout(name: string, o: number, i: number, grid: QuantGrid): Error {
  return new Error(
    `${name}.weight: the (${o}, ${i}) slice of this act-order GPTQ weight (${grid.out}, ${grid.inF}) has no GPTQ layout (its kept inputs use groups past ⌈${i}/${grid.groupSize}⌉); pass --dequantize to write the model in float`,
  );
}

/**
 * mergeSubnet's model: the sub-network as it ships — on a GPTQ base's grid, or in float when that grid has
 * no GPTQ layout at the active widths (act-order; `lonas extract` then needs --dequantize, which writes float).
 */
export function extractMerged(model: LlamaModel): LlamaModel {
  const layout = model.layers.every((l) =>
    PROJECTIONS.every((p) => {
      const grid = gridOf(l.proj[p]);
      return !grid || sliceHasLayout(grid, l.proj[p].inFeatures);
    }),
  );
  return mergeSubnet(model, { dequantize: !layout }).model;
}

/**
 * Writes the extracted model (and, unmerged, its sliced adapter under `<outDir>/adapter`), all of it
 * appearing at once; `requantization` is what merging onto a GPTQ base's grid changed (mergeSubnet), null
 * when nothing was requantised.
 */
export function extractToDir(
  model: LlamaModel,
  outDir: string,
  o: ExtractOptions,
): { config: LlamaConfig; adapterDir: string | null } & Omit<MergedSubnet, 'model'> {
  const loras = loraModules(model);
  const unmerged = !o.merge && loras.length > 0;
  if (unmerged) refuseDequantizedQa(loras, !!o.dequantize);
  // unmerged: slice the base with the adapters switched off, then write the sliced adapters beside it
  const merged = unmerged ? withAdaptersOff(loras, () => mergeSubnet(model, o)) : noGrad(() => mergeSubnet(model, o));
  const smaller = merged.model;
  const adapters = unmerged ? loras.filter((l) => l.activeRank > 0).map((l) => slicedAdapter(l)) : null;
  const adapterDir = adapters ? join(outDir, 'adapter') : null;
  saveModelDir(outDir, smaller, {
    hfConfig: o.hfConfig,
    dtype: o.dtype,
    overwrite: true,
    finish: (tmp) => {
      finishExtract(tmp, outDir, o.sourceDir, adapters && { entries: adapters, mode: loras[0].variant.mode });
      o.finish?.(tmp, merged, adapterDir);
    },
  });
  return { config: smaller.config, adapterDir, requantization: merged.requantization, zerosLost: merged.zerosLost };
}

/**
 * A QA-SparsePEFT adapter acts through its base's INT4 grid, which a dequantised base no longer has; an
 * unmerged extraction of one with --dequantize is refused before anything is written.
 */
export function refuseDequantizedQa(loras: LoraLinear[], dequantizeBase: boolean): void {
  const qa = loras.find((l) => l.variant.mode === 'qa');
  if (qa && dequantizeBase)
    throw new Error(
      `${qa.name}: a QA-SparsePEFT adapter cannot be extracted unmerged onto a dequantised base (it computes through the INT4 grid); drop --dequantize, or extract with --merge`,
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
