/**
 * Loading and saving a LlamaModel as a Hugging Face model directory (the files themselves: io/hf-dir.ts;
 * which tensors, their names and shapes: weights.ts).
 *
 * Loading validates the whole layout (config, index, every shard header) before reading tensor data, then
 * reads each tensor straight into its own float32 array (F16/BF16 widened) — or, for BF16 weights kept in
 * bfloat16 (WeightsMode), into its own bits array — so peak memory is the model as stored in memory, not
 * the file on top of it. Saving writes a complete directory that replaces the target at once.
 */
import { join } from 'node:path';
import type { SafetensorsFile, TensorEntry, TensorToWrite } from '../../io/safetensors.ts';
import { CONFIG_FILE, INDEX_FILE, hfJson, openWeights, readConfigJson, writeModelDir } from '../../io/hf-dir.ts';
import { Bf16Matrix, Tensor } from '../../tensor/index.ts';
import type { LlamaConfig } from './config.ts';
import { parseHfConfig, toHfConfig } from './hf-config.ts';
import type { ParseOptions } from './hf-config.ts';
import { LlamaModel } from './model.ts';
import { PROJECTIONS, llamaWeightTable, projectionWeightName } from './weights.ts';
import type { LlamaTensor } from './weights.ts';
import { QuantLinear } from '../../nn/quant-linear.ts';
import type { Linear } from '../../nn/modules.ts';
import { dequantize } from '../../nn/quantized-weight.ts';
import type { QuantGrid, QuantizedWeight } from '../../nn/quantized-weight.ts';
import { formatFor, gptqConfigFor, gptqTensors, readGptqGrid, readGptqProjection } from './gptq-io.ts';

/** Callers that copy tokenizer files beside a saved model import them from here (they live in io/hf-dir.ts). */
export { TOKENIZER_FILES, copyTokenizerFiles } from '../../io/hf-dir.ts';

export type WeightDType = 'F32' | 'F16' | 'BF16';

/**
 * Storage of the projection, embedding and LM-head weights in memory (norms and biases are always float32):
 *  - 'f32': every tensor widened to float32 at load;
 *  - 'bf16': those weights kept in bfloat16 (the checkpoint must store them as BF16 — rounding other weights
 *    would change the model, so that is an error);
 *  - 'auto': kept in bfloat16 when the checkpoint stores them as BF16, else float32.
 * A bf16 weight computes with exactly its float32 values (the kernels widen it in registers; see
 * nn/modules.ts WeightStore), and whatever needs it as a float32 Tensor later gets it, widened exactly.
 */
export type WeightsMode = 'auto' | 'f32' | 'bf16';

export interface LoadOptions extends ParseOptions {
  /** called after each tensor is read */
  onProgress?: (p: { tensor: string; done: number; total: number }) => void;
  /** see WeightsMode; default 'f32' for loadModelDir (its callers read float32 tensors), 'auto' for loadLlama */
  weights?: WeightsMode;
}

export interface LoadedModelDir {
  config: LlamaConfig;
  /** config.json as parsed (unknown fields kept, for saving a derived model) */
  hfConfig: Record<string, unknown>;
  /** HF name → float32 tensor, only the tensors the config needs (except those in `bf16`) */
  weights: Map<string, Tensor>;
  /** HF name → weights kept in bfloat16 (weights 'bf16' / 'auto' with a BF16 checkpoint); not in `weights` */
  bf16: Map<string, Bf16Matrix>;
  /** storage dtype of most parameters (F64 counts as F32) */
  dtype: WeightDType;
  /** tensors in the files that the model does not use (e.g. rotary_emb.inv_freq, lm_head when tied) */
  unused: string[];
  /** HF name → the file it was read from (for error messages) */
  sources: Map<string, string>;
  /** GPTQ-quantised projections (and the LM head) by module name (e.g. model.layers.0.mlp.up_proj, lm_head) */
  quantized: Map<string, QuantizedWeight>;
}

/** Reads a model directory: validated config and float32 weights by HF name. */
export function loadModelDir(dir: string, opts: LoadOptions = {}): LoadedModelDir {
  const { configPath, hfConfig } = readConfigJson(dir);
  const config = parseHfConfig(hfConfig, configPath, opts);
  const table = llamaWeightTable(config);
  const { files, where } = openWeights(dir);
  try {
    const quantizedHead = !!config.quantization?.lmHead;
    checkHead(dir, configPath, files, where, quantizedHead);
    const stored = storedNames(config, files, where);
    const storedName = (name: string) => stored.get(name) ?? name;
    // missing ones are reported by LlamaModel; a quantised head is read from lm_head.qweight/… below
    const rows = table.all.filter((t) => where.has(t.name) && !(quantizedHead && t === table.lmHead));
    const wanted = new Set(rows.map((t) => storedName(t.name)));
    const weights = new Map<string, Tensor>();
    const sources = new Map<string, string>();
    const quantized = new Map<string, QuantizedWeight>();
    if (config.quantization) {
      // GPTQ projections (and head): <module>.qweight/qzeros/scales/g_idx instead of <module>.weight; dequantised for the float paths
      for (const t of table.all) {
        const {
            name,
            shape: [out, inF],
          } = t,
          prefix = name.replace(/\.weight$/, '');
        const file = where.get(`${prefix}.qweight`);
        if (!t.quantizable || !file || (where.has(name) && !(quantizedHead && t === table.lmHead))) continue;
        const qw = readGptqProjection(file, prefix, out, inF, config.quantization);
        weights.set(name, new Tensor(dequantize(qw), [out, inF], { name }));
        sources.set(name, file.path);
        quantized.set(prefix, qw);
        for (const part of ['qweight', 'qzeros', 'scales', 'g_idx']) wanted.add(`${prefix}.${part}`);
      }
    }
    const mode = opts.weights ?? 'f32';
    const bf16 = new Map<string, Bf16Matrix>();
    rows.forEach(({ name, bf16Capable }, i) => {
      const file = where.get(name)!,
        inFile = storedName(name);
      const keep = mode !== 'f32' && bf16Capable;
      const w = readWeight(file, inFile, name, keep);
      if (w instanceof Bf16Matrix) bf16.set(name, w);
      else {
        if (keep && mode === 'bf16') {
          throw new Error(
            `${file.path}: tensor '${name}' is stored as ${file.entry(inFile).dtype}; weights: 'bf16' keeps BF16-stored weights only (rounding would change the model); use weights: 'auto' or 'f32'`,
          );
        }
        weights.set(name, w);
      }
      sources.set(name, file.path);
      opts.onProgress?.({ tensor: name, done: i + 1, total: rows.length });
    });
    const dtype = entriesDtype(rows.map((t) => where.get(t.name)!.entry(storedName(t.name))));
    const unused = [...where.keys()].filter((n) => !wanted.has(n) && !stored.has(n));
    return { config, hfConfig: hfConfig as Record<string, unknown>, weights, bf16, dtype, unused, sources, quantized };
  } finally {
    for (const f of files) f.close();
  }
}

/** The dtype most of these (floating) entries' elements are stored in; F64 counts as F32, integers (GPTQ codes) not at all. */
function entriesDtype(entries: TensorEntry[]): WeightDType {
  const elems: Record<string, number> = {};
  for (const e of entries) {
    if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16' && e.dtype !== 'F64') continue;
    const d = e.dtype === 'F64' ? 'F32' : e.dtype;
    elems[d] = (elems[d] ?? 0) + e.shape.reduce((a, b) => a * b, 1);
  }
  return (Object.keys(elems) as WeightDType[]).reduce<WeightDType>((a, b) => ((elems[b] ?? 0) > (elems[a] ?? 0) ? b : a), 'F32');
}

/** An open model directory whose headers are read and checked; tensor data is read on request, one tensor at a time. */
export interface ModelWeights {
  config: LlamaConfig;
  hfConfig: Record<string, unknown>;
  /** storage dtype of most parameters, from the headers (as loadModelDir's `dtype`) */
  dtype: WeightDType;
  /** the header entry of an HF-named tensor (aliases of shared tensors resolved), undefined when absent */
  entry(name: string): TensorEntry | undefined;
  /** whether a weight-table row is stored GPTQ-quantised (<module>.qweight, …), as loadModelDir reads it */
  gptq(row: LlamaTensor): boolean;
  /** a GPTQ-stored row's grid (qzeros, scales, g_idx), its codes not read */
  readGptqGrid(row: LlamaTensor): QuantGrid;
  /** a GPTQ-stored row as loadModelDir reads it (codes unpacked) */
  readGptq(row: LlamaTensor): QuantizedWeight;
  /** a floating tensor widened to float32 */
  read(name: string): Tensor;
  /** a floating tensor as stored in `dtype`: the stored bytes when the dtypes agree, else converted (rounded to nearest even) */
  readAs(name: string, dtype: WeightDType): TensorToWrite;
  close(): void;
}

/**
 * Opens a model directory for reading tensor by tensor (streamed merge, extraction, inspect): config.json
 * parsed, every header validated, nothing else read. The caller closes it.
 */
export function openModelWeights(dir: string, opts: ParseOptions = {}): ModelWeights {
  const { configPath, hfConfig } = readConfigJson(dir);
  const config = parseHfConfig(hfConfig, configPath, opts);
  const { files, where } = openWeights(dir);
  try {
    checkHead(dir, configPath, files, where, !!config.quantization?.lmHead);
    const stored = storedNames(config, files, where);
    const at = (name: string) => {
      const file = where.get(name);
      if (!file) throw new Error(`${dir}: the weights have no tensor '${name}' (the weights do not match ${configPath})`);
      return { file, inFile: stored.get(name) ?? name };
    };
    const entry = (name: string) => {
      const file = where.get(name);
      return file?.entry(stored.get(name) ?? name);
    };
    const table = llamaWeightTable(config);
    const present = table.all.flatMap((t) => entry(t.name) ?? []);
    const quantizedHead = !!config.quantization?.lmHead;
    const gptqArgs = (t: LlamaTensor) => {
      const prefix = t.name.replace(/\.weight$/, '');
      const file = where.get(`${prefix}.qweight`);
      if (!file || !config.quantization) throw new Error(`${dir}: '${prefix}' is not stored GPTQ-quantised (no ${prefix}.qweight)`);
      return [file, prefix, t.shape[0], t.shape[1], config.quantization] as const;
    };
    return {
      readGptqGrid: (t) => readGptqGrid(...gptqArgs(t)),
      readGptq: (t) => readGptqProjection(...gptqArgs(t)),
      gptq: (t) =>
        !!config.quantization &&
        t.quantizable &&
        where.has(`${t.name.replace(/\.weight$/, '')}.qweight`) &&
        (!where.has(t.name) || (quantizedHead && t === table.lmHead)),
      config,
      hfConfig: hfConfig as Record<string, unknown>,
      dtype: entriesDtype(present),
      entry,
      read(name) {
        const { file, inFile } = at(name);
        const { data, shape } = file.readFloat32(inFile);
        return new Tensor(data, shape, { name });
      },
      readAs(name, dtype) {
        const { file, inFile } = at(name);
        const e = file.entry(inFile);
        if (e.dtype === dtype) {
          const raw = file.readRaw(inFile);
          return { dtype, shape: e.shape, data: dtype === 'F32' ? new Float32Array(raw.buffer) : new Uint16Array(raw.buffer) };
        }
        return { dtype, shape: e.shape, data: file.readFloat32(inFile).data };
      },
      close: () => {
        for (const f of files) f.close();
      },
    };
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

/** How `inFile` is stored (F64 counts as F32); a non-float tensor is an error naming the file. */
export function storageDtype(file: SafetensorsFile, inFile: string): WeightDType {
  const { dtype } = file.entry(inFile);
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && dtype !== 'F64') {
    throw new Error(`${file.path}: tensor '${inFile}' is ${dtype}; lonas loads floating-point weights only (quantized checkpoint?)`);
  }
  return dtype === 'F64' ? 'F32' : dtype;
}

/** The most common storage dtype of `counts` (elements by dtype); F32 when empty. */
export function dominantDtype(counts: Partial<Record<WeightDType, number>>): WeightDType {
  return (Object.keys(counts) as WeightDType[]).reduce<WeightDType>((a, b) => ((counts[b] ?? 0) > (counts[a] ?? 0) ? b : a), 'F32');
}

/** Tensor `name` (stored as `inFile`): its BF16 bits when `keepBf16` and it is stored BF16, else float32. */
/**
 * One weight as the model holds it: BF16 bits kept when asked and stored so, else float32 — into `spare(n)`'s buffer
 * of n floats when it has one (LayerwiseCheckpoint reuses the previous layer's), else a new one.
 */
export function readWeight(
  file: SafetensorsFile,
  inFile: string,
  name: string,
  keepBf16: boolean,
  spare?: (n: number) => Float32Array | undefined,
): Tensor | Bf16Matrix {
  const stored = storageDtype(file, inFile); // a non-float tensor is an error naming the file
  if (keepBf16 && stored === 'BF16') {
    const { bits, shape } = file.readBf16Bits(inFile);
    return new Bf16Matrix(bits, [shape[0], shape[1]], name);
  }
  const { data, shape } = file.readFloat32(inFile, spare?.(file.entry(inFile).shape.reduce((a, b) => a * b, 1)));
  return new Tensor(data, shape, { name });
}

/**
 * Tensors stored under another name, as Hugging Face tools write shared tensors: HF name → name in the file
 * (each such HF name is added to `where`). safetensors' save_model keeps one name of a shared tensor and
 * records each dropped one in __metadata__ (dropped name → kept name); a tied model may keep lm_head.weight
 * rather than the embedding, with or without that record, and then its embedding is read from lm_head.weight.
 * Shared with the GGUF exporter, so both read such a checkpoint the same way.
 */
export function storedNames(config: LlamaConfig, files: SafetensorsFile[], where: Map<string, SafetensorsFile>): Map<string, string> {
  const stored = new Map<string, string>();
  for (const file of files) {
    for (const [name, kept] of Object.entries(file.metadata)) {
      if (where.has(name) || !file.has(kept)) continue; // not an alias (e.g. format: pt), or the name is stored itself
      stored.set(name, kept);
      where.set(name, file);
    }
  }
  const embed = 'model.embed_tokens.weight',
    head = where.get('lm_head.weight');
  if (config.tieWordEmbeddings && !where.has(embed) && head) {
    stored.set(embed, 'lm_head.weight');
    where.set(embed, head);
  }
  return stored;
}

/**
 * The LM head is read quantised exactly when config.json says so (quantization_config.lm_head): a flag
 * without lm_head.qweight, or lm_head.qweight without the flag, is an error naming the file and the tensor.
 */
function checkHead(
  dir: string,
  configPath: string,
  files: SafetensorsFile[],
  where: Map<string, SafetensorsFile>,
  quantizedHead: boolean,
): void {
  const weightsFile = files.length === 1 ? files[0].path : join(dir, INDEX_FILE);
  if (quantizedHead && !where.has('lm_head.qweight')) {
    throw new Error(
      `${weightsFile}: has no tensor 'lm_head.qweight', but ${configPath} says the LM head is GPTQ-quantised (quantization_config.lm_head: true); ` +
        'the checkpoint is incomplete, or the flag is wrong',
    );
  }
  if (!quantizedHead && where.has('lm_head.qweight') && !where.has('lm_head.weight')) {
    throw new Error(
      `${weightsFile}: holds a GPTQ-quantised LM head ('lm_head.qweight'), but ${configPath} does not say so; add "lm_head": true to its quantization_config`,
    );
  }
}

/**
 * Builds the model from loaded weights; a missing or mis-shaped tensor is reported with the file it came
 * from (or the directory when it is missing) and config.json, since one of the two is wrong.
 */
export function modelFromLoaded(dir: string, loaded: LoadedModelDir, maxPositions = loaded.config.maxPositions): LlamaModel {
  try {
    const model = new LlamaModel(
      { ...loaded.config, maxPositions },
      new Map<string, Tensor | Bf16Matrix>([...loaded.weights, ...loaded.bf16]),
    );
    model.layers.forEach((layer, i) => {
      for (const p of PROJECTIONS) {
        const qw = loaded.quantized.get(projectionWeightName(i, p));
        if (qw) layer.proj[p] = new QuantLinear(layer.proj[p] as Linear, qw);
      }
    });
    const headQw = loaded.quantized.get('lm_head');
    if (headQw) model.lmHead = new QuantLinear(model.lmHead as Linear, headQw); // untied (parseHfConfig): its own float Linear
    return model;
  } catch (e) {
    const name = /'([^']+)'/.exec((e as Error).message)?.[1];
    const where = (name && loaded.sources.get(name)) ?? dir;
    throw new Error(`${where}: ${(e as Error).message} (the weights do not match ${join(dir, CONFIG_FILE)})`, { cause: e });
  }
}

/**
 * Loads a model directory into a LlamaModel (RoPE tables sized by max_position_embeddings unless given).
 * Weights default to 'auto': a BF16 checkpoint's projections, embedding and LM head stay in bfloat16.
 */
export function loadLlama(dir: string, opts: LoadOptions & { maxPositions?: number } = {}): LlamaModel {
  return modelFromLoaded(dir, loadModelDir(dir, { ...opts, weights: opts.weights ?? 'auto' }), opts.maxPositions);
}

export interface SaveOptions {
  /** config.json of the model this one derives from: its unknown fields are kept */
  hfConfig?: object;
  /** storage dtype (default F32); BF16 and F16 round to nearest even */
  dtype?: WeightDType;
  /** shard when the weights exceed this many bytes (default 2 GiB) */
  shardBytes?: number;
  /** replace the model files of a directory that already holds a model (other files are kept) */
  overwrite?: boolean;
  /** further files written into the new directory before it replaces the target (io/hf-dir.ts) */
  finish?: (tmpDir: string) => void;
}

/** config.json text of a model saved with `dtype` (torch_dtype, and transformers ≥ 5's dtype when the source has it). */
export function modelConfigJson(config: LlamaConfig, dtype: WeightDType, hfConfig?: object): string {
  const hf = toHfConfig(config, hfConfig);
  hf.torch_dtype = TORCH_DTYPES[dtype];
  if ('dtype' in hf) hf.dtype = hf.torch_dtype;
  return `${hfJson(hf)}\n`;
}

/** The torch_dtype name of each storage dtype (config.json, and the logs). */
export const TORCH_DTYPES: Record<WeightDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** Shards of at most 2 GiB, unless one tensor group is larger. */
export const DEFAULT_SHARD_BYTES = 2 * 1024 ** 3;

/** The GPTQ-quantised projections (and LM head) of a model, by module name. */
function quantizedModules(model: LlamaModel): Map<string, QuantizedWeight> {
  const out = new Map<string, QuantizedWeight>();
  model.layers.forEach((layer, i) => {
    for (const p of PROJECTIONS) {
      const m = layer.proj[p];
      if (m instanceof QuantLinear) out.set(projectionWeightName(i, p), m.qw);
    }
  });
  if (model.lmHead instanceof QuantLinear) {
    if (model.config.tieWordEmbeddings)
      throw new Error(
        'saveModelDir: the LM head is quantised but the config ties it to the embedding (set tieWordEmbeddings false: a quantised head is its own module)',
      );
    out.set('lm_head', model.lmHead.qw);
  }
  return out;
}

/**
 * Writes config.json (via toHfConfig) and the weights (in weight-table order) as model.safetensors, or as
 * shards plus model.safetensors.index.json when they exceed `shardBytes`. Every projection must be a plain
 * Linear or a QuantLinear (merge adapters first). The new files appear all at once (io/hf-dir.ts).
 */
export function saveModelDir(dir: string, model: LlamaModel, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const params = model.namedParameters();
  const names = llamaWeightTable(model.config).all.map((t) => t.name);
  const missing = names.filter((n) => !params.has(n));
  if (missing.length)
    throw new Error(
      `saveModelDir: the model has no plain tensor for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''} (merge adapters into their base weights before saving)`,
    );

  const quantized = quantizedModules(model);
  const format = formatFor(quantized.values());
  // one group per table row: a GPTQ module's four tensors stay in one shard
  const groups = names.map((name): Record<string, TensorToWrite> => {
    const qw = quantized.get(name.replace(/\.weight$/, ''));
    if (qw) return gptqTensors(name.replace(/\.weight$/, ''), qw, format);
    const t = params.get(name)!,
      data = t.contiguousData();
    return { [name]: { dtype, shape: t.shape, data: data instanceof Float32Array ? data : Float32Array.from(data) } };
  });

  const quantization = gptqConfigFor(quantized, model.config.layers.length, format, model.config.quantization);
  writeModelDir(dir, modelConfigJson({ ...model.config, quantization }, dtype, opts.hfConfig), groups, {
    shardBytes: opts.shardBytes ?? DEFAULT_SHARD_BYTES,
    overwrite: opts.overwrite,
    finish: opts.finish,
  });
}
