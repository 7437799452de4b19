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
 * A GPTQ base goes through the in-memory path (src/nas/extract.ts): whether a projection stays INT4, and the
 * zero-point format of the file, are known only after every projection is merged.
 */
import { resolve } from 'node:path';
import { noGrad } from '../tensor/index.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import { writeModelDirStreamed } from '../io/hf-dir.ts';
import { DEFAULT_SHARD_BYTES, modelConfigJson, openModelWeights } from '../models/llama/checkpoint.ts';
import type { ModelWeights, WeightDType } from '../models/llama/checkpoint.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { PROJECTIONS, llamaWeightTable, mapProjections, projectionWeightName } from '../models/llama/weights.ts';
import { noRequantStats } from '../nn/quantized-weight.ts';
import { Linear } from '../nn/modules.ts';
import type { LinearLike } from '../nn/modules.ts';
import { withAdaptersOff } from '../adapters/lora.ts';
import { attachLayerAdapter, checkAdapterBase, readAdapter } from '../adapters/peft.ts';
import type { AdapterEntry } from '../adapters/peft.ts';
import { adapterSearchSpace, loadWithAdapter } from './load.ts';
import { applySubnetToLayer, resolveSubnetSpec, subnetLayerSizes } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';
import { extractProjection, extractToDir, finishExtract, refuseDequantizedQa, slicedAdapter } from './extract.ts';
import type { Requantization } from './extract.ts';
import { countModule, countMacs, countParams, macsOfSizes, moduleSize, nonLayerParams, paramsOfSizes } from './cost.ts';
import type { ModuleSize, ParamCount } from './cost.ts';

/** The sequence length countMacs counts by default (1×256). */
const ADAPTER_MACS_SEQ = 256;

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
  if (weights.config.quantization) {
    weights.close();
    return inMemoryExtract(modelDir, adapterDir, subnetSpec, outDir, { ...o, dtype: o.dtype ?? weights.dtype }, weights.hfConfig);
  }
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
  const subnetParams = nonLayerParams(c);
  let layerNonZero = 0;
  const slicedAdapters: AdapterEntry[] = [];
  const stats: Requantization = { ...noRequantStats(), projections: 0 };
  const zerosLost = new Map<string, number>();

  /** Layer l's output tensors by name, each made when it is written (norms as stored, projections merged and sliced). */
  const layerTensors = (l: number): Map<string, () => TensorToWrite> => {
    const rows = table.layers[l];
    const proj = mapProjections(
      (p): LinearLike => new Linear(weights.read(rows.proj[p].weight.name), rows.proj[p].bias && weights.read(rows.proj[p].bias.name)),
    );
    const loras = attachLayerAdapter(proj, l, adapter);
    const hasBias = (p: (typeof PROJECTIONS)[number]) => rows.proj[p].bias !== null;
    sizes.base.push(PROJECTIONS.map((p) => ({ ...moduleSize(proj[p], hasBias(p)), rank: 0 })));
    applySubnetToLayer(proj, l, c, space, subnet);
    sizes.subnet.push(PROJECTIONS.map((p) => moduleSize(proj[p], hasBias(p))));
    for (const p of PROJECTIONS) {
      const n = countModule(proj[p]);
      subnetParams.total += n.total;
      subnetParams.nonZero += n.nonZero;
      subnetParams.adapter += n.adapter;
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
    const out = new Map<string, () => TensorToWrite>();
    for (const norm of [rows.inputNorm, rows.postAttentionNorm]) out.set(norm.name, () => weights.readAs(norm.name, dtype));
    for (const p of PROJECTIONS) {
      const { weight: w, bias: b } = rows.proj[p];
      out.set(w.name, () => {
        const m = live.get(p)!;
        live.delete(p);
        const name = projectionWeightName(l, p);
        const merge = () => extractProjection(m, name, stats, o.dequantize);
        const { weight, bias, zerosLost: lost } = unmerged ? withAdaptersOff(loras, merge) : noGrad(merge);
        if (lost) zerosLost.set(name, lost);
        for (const v of weight) if (v !== 0) layerNonZero++;
        if (b && bias) {
          for (const v of bias) if (v !== 0) layerNonZero++;
          biases.set(b.name, { dtype, shape: [bias.length], data: bias });
        }
        return { dtype, shape: [m.outFeatures, m.inFeatures], data: weight };
      });
      if (b) out.set(b.name, () => biases.get(b.name)!);
    }
    return out;
  };

  let current: { layer: number; tensors: Map<string, () => TensorToWrite> } | null = null;
  const produce = (k: number): Record<string, TensorToWrite> => {
    const row = outTable.all[k];
    if (row.layer === null) return { [row.name]: weights.readAs(row.name, dtype) }; // embedding, final norm, LM head
    if (current?.layer !== row.layer) current = { layer: row.layer, tensors: layerTensors(row.layer) }; // the previous layer is let go
    const t = current.tensors.get(row.name);
    if (!t)
      throw new Error(`streamed extraction: layer ${row.layer} produced no '${row.name}' (a bug: the output table and the layer disagree)`);
    current.tensors.delete(row.name);
    return { [row.name]: t() };
  };

  const result = (): StreamedExtract => {
    const extracted = paramsOfSizes(config, sizes.out);
    return {
      config,
      subnet,
      dtype,
      adapterDir: unmerged ? resolve(outDir, 'adapter') : null,
      base: { params: paramsOfSizes(c, sizes.base).total, macs: macsOfSizes(c, sizes.base) },
      subnetCost: { params: subnetParams, macs: macsOfSizes(c, sizes.subnet) },
      extracted: {
        params: { ...extracted, nonZero: nonLayerParams(config).nonZero + layerNonZero + extracted.adapter },
        macs: macsOfSizes(config, sizes.out),
      },
      requantization: stats.projections ? stats : null,
      zerosLost,
      dequantized: !!o.dequantize && !!c.quantization,
    };
  };
  writeModelDirStreamed(
    outDir,
    modelConfigJson({ ...config, quantization: null }, dtype, weights.hfConfig),
    outTable.all.map((t) => ({ [t.name]: { dtype, shape: t.shape } })),
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

/** The same result through the in-memory path (GPTQ bases; see the file comment). */
function inMemoryExtract(
  modelDir: string,
  adapterDir: string,
  subnetSpec: string | undefined,
  outDir: string,
  o: StreamExtractOptions & { dtype: WeightDType },
  hfConfig: Record<string, unknown>,
): StreamedExtract {
  const { supernet } = loadWithAdapter(modelDir, adapterDir, subnetSpec ?? 'maximal');
  const { model, config: subnet } = supernet!;
  const base = supernet!.baseCost();
  const subnetCost = { params: countParams(model), macs: countMacs(model) };
  const { dtype } = o;
  let result: StreamedExtract | null = null;
  extractToDir(model, outDir, {
    merge: o.merge,
    sourceDir: modelDir,
    hfConfig,
    dtype,
    dequantize: o.dequantize,
    finish: (tmp, { model: smaller, requantization, zerosLost }, adapterDir) => {
      // an unmerged adapter keeps the sub-network's active ranks
      const p = countParams(smaller),
        a = adapterDir ? subnetCost.params.adapter : 0;
      result = {
        config: smaller.config,
        subnet,
        dtype,
        adapterDir: adapterDir && resolve(adapterDir),
        base: { params: base.params.total, macs: base.macs },
        subnetCost,
        extracted: {
          params: { total: p.total + a, nonZero: p.nonZero + a, adapter: a },
          macs: countMacs(smaller) + ADAPTER_MACS_SEQ * a, // countMacs counts L · r(i + o) per adapter
        },
        requantization,
        zerosLost,
        dequantized: !!o.dequantize,
      };
      o.finish?.(tmp, result);
    },
  });
  return result!;
}
