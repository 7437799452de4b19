/**
 * Extraction and merging one decoder layer at a time (`lonas merge`, `lonas extract`, the exporters' merged
 * sub-network): config.json, the shard headers and the adapter (small) are read first; then, for each layer,
 * its tensors are read from the shards, the adapter attached exactly as loadAdapter does (SparsePEFT masks,
 * MLP channel order), the sub-network's sizes applied (applySubnetToLayer), every projection merged and
 * sliced by extractProjection — the same function the in-memory extraction runs — and written to its output
 * shard before the next layer is read. The output's shapes follow from config.json and the sub-network, so
 * the safetensors headers are planned before any data is read, and every count is taken on the way (no
 * reloading). Memory holds one layer in float32 plus the tensor being written, not the model.
 *
 * The output dtype is the base's storage dtype unless asked otherwise: a BF16 base stays BF16 (embedding
 * and norms copied bit for bit, merged weights rounded to nearest even at the end).
 *
 * A GPTQ base streams too: every GPTQ projection stays INT4 on the base's grid sliced to its widths (unless
 * --dequantize), so the grids read first (qzeros, scales, g_idx; no codes) give quantization_config, the
 * zero-point format and the GPTQ tensors' shapes up front; each layer's codes are read with it,
 * dequantised for the merge and requantised onto the grid by extractProjection, as in memory.
 */
import { resolve } from 'node:path';
import { Tensor, noGrad } from '../tensor/index.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import { writeModelDirStreamed } from '../io/hf-dir.ts';
import { DEFAULT_SHARD_BYTES, modelConfigJson, openModelWeights } from '../models/llama/checkpoint.ts';
import type { ModelWeights, WeightDType } from '../models/llama/checkpoint.ts';
import type { GptqConfig, LlamaConfig } from '../models/llama/config.ts';
import { formatFor, gptqConfigFor, gptqTensorPlan, gptqTensors } from '../models/llama/gptq-io.ts';
import { PROJECTIONS, llamaWeightTable, mapProjections, projectionWeightName } from '../models/llama/weights.ts';
import type { LlamaTensor, LlamaWeightTable } from '../models/llama/weights.ts';
import { dequantize, noRequantStats, sliceGrid } from '../nn/quantized-weight.ts';
import type { QuantGrid } from '../nn/quantized-weight.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import { Linear } from '../nn/modules.ts';
import type { LinearLike } from '../nn/modules.ts';
import { withAdaptersOff } from '../adapters/lora.ts';
import { attachLayerAdapter, checkAdapterBase, readAdapter } from '../adapters/peft.ts';
import type { AdapterEntry } from '../adapters/peft.ts';
import { adapterSearchSpace } from './load.ts';
import { applySubnetToLayer, resolveSubnetSpec, subnetLayerSizes } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';
import { extractProjection, finishExtract, noGptqLayout, refuseDequantizedQa, slicedAdapter } from './extract.ts';
import type { Requantization } from './extract.ts';
import { countModule, macsOfSizes, moduleSize, nonLayerParams, paramsOfSizes } from './cost.ts';
import type { ModuleSize, ParamCount } from './cost.ts';

export interface StreamExtractOptions {
  /** fold the adapter into the weights; else the sliced base plus the sliced adapter in <out>/adapter */
  merge: boolean;
  /** default: the base's storage dtype */
  dtype?: WeightDType;
  /** write a GPTQ base's weights in float (`dtype`) instead of on its INT4 grid */
  dequantize?: boolean;
  /** shard size of the output (default 2 GiB, as saveModelDir) */
  shardBytes?: number;
  /** more files written into the new directory before it replaces `out` (it gets the counts) */
  finish?: (tmpDir: string, result: StreamedExtract) => void;
}

export interface StreamedExtract {
  /** the written model's config (per-layer sizes of the sub-network) */
  config: LlamaConfig;
  subnet: SubnetConfig;
  dtype: WeightDType;
  adapterDir: string | null;
  /** the base: full sizes, adapters off */
  base: { params: number; macs: number };
  /** the model at the sub-network, adapters active (countParams / countMacs of the super-network) */
  subnetCost: { params: ParamCount; macs: number };
  /** the written model (nonZero: of the written weights) */
  extracted: { params: ParamCount; macs: number };
  /** what requantising adapted projections onto a GPTQ base's grid changed; null when none was */
  requantization: Requantization | null;
  /** GPTQ module → its weights that were exactly 0 and are not in the output */
  zerosLost: Map<string, number>;
  /** a GPTQ base written in float (--dequantize) */
  dequantized: boolean;
}

/** Writes the sub-network `subnetSpec` (default maximal) of `modelDir` + `adapterDir` to `outDir`, layer by layer. */
export function streamExtract(
  modelDir: string,
  adapterDir: string,
  subnetSpec: string | undefined,
  outDir: string,
  o: StreamExtractOptions,
): StreamedExtract {
  checkAdapterBase(modelDir, adapterDir);
  const weights = openModelWeights(modelDir);
  try {
    return streamed(weights, modelDir, adapterDir, subnetSpec, outDir, o);
  } finally {
    weights.close();
  }
}

function streamed(
  weights: ModelWeights,
  modelDir: string,
  adapterDir: string,
  subnetSpec: string | undefined,
  outDir: string,
  o: StreamExtractOptions,
): StreamedExtract {
  const c = weights.config,
    table = llamaWeightTable(c);
  const adapter = readAdapter(c, adapterDir);
  const space = adapterSearchSpace(adapterDir, adapter.searchSpace, c, adapter.settings);
  const subnet = resolveSubnetSpec(space, subnetSpec ?? 'maximal');
  const config: LlamaConfig = { ...c, layers: subnetLayerSizes(c, space, subnet) };
  const dtype = o.dtype ?? weights.dtype;
  const outTable = llamaWeightTable(config);
  const unmerged = !o.merge && adapter.modules.some((m) => Object.keys(m).length > 0);
  const sizes: Record<'base' | 'subnet' | 'out', ModuleSize[][]> = { base: [], subnet: [], out: [] };
  const subnetLayers: ParamCount = { total: 0, nonZero: 0, adapter: 0 };
  /** a GPTQ head's non-zero weights (counted as the projections' are), once it is read */
  let headNonZero: number | undefined;
  let layerNonZero = 0;
  const slicedAdapters: AdapterEntry[] = [];
  const stats: Requantization = { ...noRequantStats(), projections: 0 };
  const zerosLost = new Map<string, number>();
  const gptq = o.dequantize ? null : plannedGrids(weights, table, outTable);
  // the written model's quantization_config (null: float, as --dequantize writes a GPTQ base)
  config.quantization = gptq && gptqConfigFor(gptq.grids, config.layers.length, gptq.format, c.quantization);

  /** Layer l's output tensor groups by row name, each made when it is written (norms as stored, projections merged and sliced). */
  const layerTensors = (l: number): Map<string, () => Record<string, TensorToWrite>> => {
    const rows = table.layers[l];
    const proj = mapProjections((p): LinearLike => {
      const { weight: row, bias } = rows.proj[p];
      if (!weights.gptq(row)) return new Linear(weights.read(row.name), bias && weights.read(bias.name));
      // as loadLlama builds it: the dequantised float Linear beside its codes
      const qw = weights.readGptq(row);
      return new QuantLinear(new Linear(new Tensor(dequantize(qw), row.shape, { name: row.name }), bias && weights.read(bias.name)), qw);
    });
    const loras = attachLayerAdapter(proj, l, adapter);
    const hasBias = (p: (typeof PROJECTIONS)[number]) => rows.proj[p].bias !== null;
    sizes.base.push(PROJECTIONS.map((p) => ({ ...moduleSize(proj[p], hasBias(p)), rank: 0 })));
    applySubnetToLayer(proj, l, c, space, subnet);
    sizes.subnet.push(PROJECTIONS.map((p) => moduleSize(proj[p], hasBias(p))));
    for (const p of PROJECTIONS) {
      const n = countModule(proj[p]);
      subnetLayers.total += n.total;
      subnetLayers.nonZero += n.nonZero;
      subnetLayers.adapter += n.adapter;
    }
    if (unmerged) {
      refuseDequantizedQa(loras, !!o.dequantize);
      slicedAdapters.push(...loras.filter((m) => m.activeRank > 0).map((m) => slicedAdapter(m)));
    }
    // unmerged, the written adapter keeps the active ranks; merged, there is no adapter path
    sizes.out.push(PROJECTIONS.map((p) => ({ ...moduleSize(proj[p], hasBias(p)), ...(unmerged ? {} : { rank: 0 }) })));
    // each projection is merged when its weight is written and then let go (its bias, the next tensor, waits)
    const live = new Map(PROJECTIONS.map((p) => [p, proj[p]]));
    const biases = new Map<string, TensorToWrite>();
    const out = new Map<string, () => Record<string, TensorToWrite>>();
    for (const norm of [rows.inputNorm, rows.postAttentionNorm])
      out.set(norm.name, () => ({ [norm.name]: weights.readAs(norm.name, dtype) }));
    for (const p of PROJECTIONS) {
      const { weight: w, bias: b } = rows.proj[p];
      out.set(w.name, () => {
        const m = live.get(p)!;
        live.delete(p);
        const name = projectionWeightName(l, p);
        const merge = () => extractProjection(m, name, stats, o.dequantize);
        const { weight, bias, qw, zerosLost: lost } = unmerged ? withAdaptersOff(loras, merge) : noGrad(merge);
        if (lost) zerosLost.set(name, lost);
        for (const v of weight) if (v !== 0) layerNonZero++;
        if (b && bias) {
          for (const v of bias) if (v !== 0) layerNonZero++;
          biases.set(b.name, { dtype, shape: [bias.length], data: bias });
        }
        return qw ? gptqTensors(name, qw, gptq!.format) : { [w.name]: { dtype, shape: [m.outFeatures, m.inFeatures], data: weight } };
      });
      if (b) out.set(b.name, () => ({ [b.name]: biases.get(b.name)! }));
    }
    return out;
  };

  let current: { layer: number; tensors: Map<string, () => Record<string, TensorToWrite>> } | null = null;
  const produce = (k: number): Record<string, TensorToWrite> => {
    const row = outTable.all[k];
    if (row.layer === null) {
      // embedding, final norm, LM head (a GPTQ head is never sliced nor adapted: its codes as they are, or dequantised)
      if (weights.gptq(row)) {
        const qw = weights.readGptq(row),
          w = dequantize(qw);
        headNonZero = w.reduce((n, v) => (v !== 0 ? n + 1 : n), 0);
        return gptq?.grids.has(HEAD) ? gptqTensors(HEAD, qw, gptq.format) : { [row.name]: { dtype, shape: row.shape, data: w } };
      }
      return { [row.name]: weights.readAs(row.name, dtype) };
    }
    if (current?.layer !== row.layer) current = { layer: row.layer, tensors: layerTensors(row.layer) }; // the previous layer is let go
    const t = current.tensors.get(row.name);
    if (!t)
      throw new Error(`streamed extraction: layer ${row.layer} produced no '${row.name}' (a bug: the output table and the layer disagree)`);
    current.tensors.delete(row.name);
    return t();
  };

  const result = (): StreamedExtract => {
    const extracted = paramsOfSizes(config, sizes.out);
    return {
      config,
      subnet,
      dtype,
      adapterDir: unmerged ? resolve(outDir, 'adapter') : null,
      base: { params: paramsOfSizes(c, sizes.base).total, macs: macsOfSizes(c, sizes.base, 256) },
      subnetCost: { params: addCounts(nonLayerParams(c, headNonZero), subnetLayers), macs: macsOfSizes(c, sizes.subnet, 256) },
      extracted: {
        params: {
          ...extracted,
          nonZero: nonLayerParams(config, gptq?.grids.has(HEAD) ? headNonZero : undefined).nonZero + layerNonZero + extracted.adapter,
        },
        macs: macsOfSizes(config, sizes.out, 256),
      },
      requantization: stats.projections ? stats : null,
      zerosLost,
      dequantized: !!o.dequantize && !!c.quantization,
    };
  };
  writeModelDirStreamed(
    outDir,
    modelConfigJson(config, dtype, weights.hfConfig),
    outTable.all.map((t) => {
      const grid = gptq?.grids.get(moduleOf(t));
      return grid ? gptqTensorPlan(moduleOf(t), grid, grid.groups) : { [t.name]: { dtype, shape: t.shape } };
    }),
    produce,
    {
      shardBytes: o.shardBytes ?? DEFAULT_SHARD_BYTES,
      overwrite: true,
      finish: (tmp) => {
        finishExtract(tmp, outDir, modelDir, unmerged ? { entries: slicedAdapters, mode: adapter.mode } : null);
        o.finish?.(tmp, result());
      },
    },
  );
  return result();
}

const HEAD = 'lm_head';
const addCounts = (a: ParamCount, b: ParamCount): ParamCount => ({
  total: a.total + b.total,
  nonZero: a.nonZero + b.nonZero,
  adapter: a.adapter + b.adapter,
});
/** What a GPTQ row's output tensors need to be planned: its sliced grid's sizes and g_idx. */
type PlannedGrid = Pick<QuantGrid, 'out' | 'inF' | 'bits' | 'groupSize' | 'gIdx'> & { groups: number };
/** A weight row's module name (model.layers.0.self_attn.q_proj, lm_head): what its GPTQ tensors are named after. */
const moduleOf = (row: LlamaTensor) => row.name.replace(/\.weight$/, '');

/**
 * The grid each GPTQ-stored row of the base is written on, sliced to the output's widths (module name →
 * grid shape and g_idx; its scales and zeros are not kept), and the zero-point format they need — all
 * from the base's qzeros, scales and g_idx, before any codes are read: with them config.json's
 * quantization_config and the safetensors headers are planned as saveModelDir would write them.
 * Null for a float base. An act-order slice without a GPTQ layout is refused here, before anything is written.
 */
function plannedGrids(
  weights: ModelWeights,
  table: LlamaWeightTable,
  outTable: LlamaWeightTable,
): { grids: Map<string, PlannedGrid>; format: GptqConfig['format'] } | null {
  if (!weights.config.quantization) return null;
  const grids = new Map<string, PlannedGrid>();
  let format: GptqConfig['format'] = 'gptq';
  table.all.forEach((row, k) => {
    if (!weights.gptq(row)) return;
    const [o, i] = outTable.all[k].shape;
    const base = weights.readGptqGrid(row);
    const sliced = sliceGrid(base, o, i);
    if (!sliced) throw noGptqLayout(moduleOf(row), o, i, base);
    if (formatFor([sliced]) === 'gptq_v2') format = 'gptq_v2';
    const { bits, groupSize, gIdx } = sliced;
    grids.set(moduleOf(row), { out: o, inF: i, bits, groupSize, gIdx, groups: sliced.scales.length / o });
  });
  return { grids, format };
}
