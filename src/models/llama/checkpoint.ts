/**
 * Hugging Face model directories: config.json plus model.safetensors, or shards listed by
 * model.safetensors.index.json (`weight_map`: tensor name → shard file).
 *
 * Loading validates the whole layout (config, index, every shard header) before reading tensor data, then
 * reads each tensor straight into its own float32 array (F16/BF16 widened) — or, for BF16 weights kept in
 * bfloat16 (WeightsMode), into its own bits array — so peak memory is the model as stored in memory, not
 * the file on top of it. Saving writes a complete directory next to the target and renames
 * it into place, so a crash never leaves a half-written model directory.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { SafetensorsFile, writeSafetensors } from '../../io/safetensors.ts';
import type { TensorToWrite } from '../../io/safetensors.ts';
import { readJsonFile as readJson } from '../../io/files.ts';
import { Bf16Matrix, Tensor } from '../../tensor/index.ts';
import type { LlamaConfig } from './config.ts';
import { parseHfConfig, toHfConfig } from './hf-config.ts';
import type { ParseOptions } from './hf-config.ts';
import { LlamaModel, PROJECTIONS, projectionWeightName } from './model.ts';
import type { ProjectionName } from './model.ts';
import { QuantLinear } from '../../nn/quant-linear.ts';
import type { Linear } from '../../nn/modules.ts';
import { dequantize } from '../../io/gptq-format.ts';
import type { QuantizedWeight } from '../../io/gptq-format.ts';
import { formatFor, gptqTensors, readGptqProjection } from './gptq-io.ts';

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

/** Weights a LlamaModel can keep in bfloat16: projections, the embedding and the LM head. */
const BF16_CAPABLE = /^(model\.embed_tokens\.weight|lm_head\.weight|model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight)$/;

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

/** (out, in) of a projection or LM-head weight named by its HF name, from the config's (per-layer) sizes. */
function linearShape(c: LlamaConfig, name: string): [number, number] {
  if (name === 'lm_head.weight') return [c.vocabSize, c.hiddenSize];
  const m = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.weight$/.exec(name);
  if (!m) throw new Error(`internal: ${name} is not a projection or LM-head weight`);
  const l = c.layers[Number(m[1])], C = c.hiddenSize, D = c.headDim;
  const shapes: Record<string, [number, number]> = {
    q_proj: [l.numHeads * D, C], k_proj: [l.numKvHeads * D, C], v_proj: [l.numKvHeads * D, C], o_proj: [C, l.numHeads * D],
    gate_proj: [l.intermediateSize, C], up_proj: [l.intermediateSize, C], down_proj: [C, l.intermediateSize],
  };
  return shapes[m[2]];
}

const CONFIG = 'config.json';
const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** Every tensor name a LlamaModel with this config reads (mirrors LlamaModel's constructor). */
export function expectedTensorNames(c: LlamaConfig): string[] {
  const names = ['model.embed_tokens.weight'];
  c.layers.forEach((_, i) => {
    names.push(`model.layers.${i}.input_layernorm.weight`, `model.layers.${i}.post_attention_layernorm.weight`);
    for (const p of PROJECTIONS) {
      names.push(`${projectionWeightName(i, p)}.weight`);
      if (c.attentionBias && (p === 'q_proj' || p === 'k_proj' || p === 'v_proj')) names.push(`${projectionWeightName(i, p)}.bias`);
    }
  });
  names.push('model.norm.weight');
  if (!c.tieWordEmbeddings) names.push('lm_head.weight');
  return names;
}

const indexSchema = z.object({ weight_map: z.record(z.string(), z.string()) }).passthrough();

/** Opens the weight files of `dir`: tensor name → open file holding it. Closes everything on error. */
function openWeights(dir: string): { files: SafetensorsFile[]; where: Map<string, SafetensorsFile> } {
  const files: SafetensorsFile[] = [];
  const where = new Map<string, SafetensorsFile>();
  try {
    const indexPath = join(dir, INDEX);
    if (existsSync(indexPath)) {
      const parsed = indexSchema.safeParse(readJson(indexPath, 'sharded weights index'));
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        throw new Error(`${indexPath}: field "${i.path.join('.')}" is invalid (${i.message}; expected {"weight_map": {tensor name: shard file}})`);
      }
      const byShard = new Map<string, SafetensorsFile>();
      for (const [name, shard] of Object.entries(parsed.data.weight_map)) {
        // shard names are plain file names: never follow a path out of the model directory
        if (shard !== basename(shard) || shard.startsWith('.')) throw new Error(`${indexPath}: weight_map["${name}"] = "${shard}" is not a file name in the model directory`);
        let file = byShard.get(shard);
        if (!file) {
          if (!existsSync(join(dir, shard))) throw new Error(`${indexPath}: weight_map["${name}"] points to shard "${shard}", which does not exist in ${dir} (incomplete download?)`);
          file = new SafetensorsFile(join(dir, shard));
          files.push(file);
          byShard.set(shard, file);
        }
        if (!file.has(name)) throw new Error(`${indexPath}: weight_map["${name}"] points to "${shard}", but that shard has no tensor '${name}' (index and shards do not match)`);
        where.set(name, file);
      }
    } else if (existsSync(join(dir, SINGLE))) {
      const file = new SafetensorsFile(join(dir, SINGLE));
      files.push(file);
      for (const name of file.entries.keys()) where.set(name, file);
    } else {
      const other = ['pytorch_model.bin', 'model.bin', 'consolidated.00.pth'].find((f) => existsSync(join(dir, f)));
      throw new Error(`${dir}: no weights found: expected ${SINGLE} or ${INDEX}` + (other ? ` (found ${other}; convert it to safetensors)` : ''));
    }
    return { files, where };
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

/** Reads a model directory: validated config and float32 weights by HF name. */
export function loadModelDir(dir: string, opts: LoadOptions = {}): LoadedModelDir {
  if (!existsSync(dir)) throw new Error(`${dir}: model directory does not exist (pass a directory holding ${CONFIG} and ${SINGLE})`);
  if (!statSync(dir).isDirectory()) throw new Error(`${dir}: not a directory (pass the model directory, not a file inside it)`);
  const configPath = join(dir, CONFIG);
  const hfConfig = readJson(configPath, `a model directory needs ${CONFIG} next to its weights`);
  const config = parseHfConfig(hfConfig, configPath, opts);
  const { files, where } = openWeights(dir);
  try {
    const quantizedHead = !!config.quantization?.lmHead;
    checkHead(dir, configPath, files, where, quantizedHead);
    // missing ones are reported by LlamaModel; a quantised head is read from lm_head.qweight/… below
    const names = expectedTensorNames(config).filter((n) => where.has(n) && !(quantizedHead && n === 'lm_head.weight'));
    const wanted = new Set(names);
    const weights = new Map<string, Tensor>();
    const sources = new Map<string, string>();
    const elems: Record<string, number> = {};
    const quantized = new Map<string, QuantizedWeight>();
    if (config.quantization) {
      // GPTQ projections (and head): <module>.qweight/qzeros/scales/g_idx instead of <module>.weight; dequantised for the float paths
      for (const name of expectedTensorNames(config)) {
        const prefix = name.replace(/\.weight$/, '');
        const file = where.get(`${prefix}.qweight`);
        if (!file || (where.has(name) && !(quantizedHead && prefix === 'lm_head'))) continue;
        const [out, inF] = linearShape(config, name);
        const qw = readGptqProjection(file, prefix, out, inF, config.quantization);
        weights.set(name, new Tensor(dequantize(qw), [out, inF], { name }));
        sources.set(name, file.path);
        quantized.set(prefix, qw);
        for (const part of ['qweight', 'qzeros', 'scales', 'g_idx']) wanted.add(`${prefix}.${part}`);
      }
    }
    const mode = opts.weights ?? 'f32';
    const bf16 = new Map<string, Bf16Matrix>();
    names.forEach((name, i) => {
      const file = where.get(name)!;
      const { dtype } = file.entry(name);
      if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && dtype !== 'F64') {
        throw new Error(`${file.path}: tensor '${name}' is ${dtype}; lonas loads floating-point weights only (quantized checkpoint?)`);
      }
      const keep = mode !== 'f32' && BF16_CAPABLE.test(name);
      if (keep && dtype === 'BF16') {
        const { bits, shape } = file.readBf16Bits(name);
        bf16.set(name, new Bf16Matrix(bits, [shape[0], shape[1]], name));
      } else {
        if (keep && mode === 'bf16') {
          throw new Error(`${file.path}: tensor '${name}' is stored as ${dtype}; weights: 'bf16' keeps BF16-stored weights only (rounding would change the model); use weights: 'auto' or 'f32'`);
        }
        const { data, shape } = file.readFloat32(name);
        weights.set(name, new Tensor(data, shape, { name }));
      }
      sources.set(name, file.path);
      const d = dtype === 'F64' ? 'F32' : dtype;
      const size = file.entry(name).shape.reduce((a, b) => a * b, 1);
      elems[d] = (elems[d] ?? 0) + size;
      opts.onProgress?.({ tensor: name, done: i + 1, total: names.length });
    });
    const dtype = (Object.keys(elems) as WeightDType[]).reduce<WeightDType>((a, b) => ((elems[b] ?? 0) > (elems[a] ?? 0) ? b : a), 'F32');
    const unused = [...where.keys()].filter((n) => !wanted.has(n));
    return { config, hfConfig: hfConfig as Record<string, unknown>, weights, bf16, dtype, unused, sources, quantized };
  } finally {
    for (const f of files) f.close();
  }
}

/**
 * The LM head is read quantised exactly when config.json says so (quantization_config.lm_head): a flag
 * without lm_head.qweight, or lm_head.qweight without the flag, is an error naming the file and the tensor.
 */
function checkHead(dir: string, configPath: string, files: SafetensorsFile[], where: Map<string, SafetensorsFile>, quantizedHead: boolean): void {
  const weightsFile = files.length === 1 ? files[0].path : join(dir, INDEX);
  if (quantizedHead && !where.has('lm_head.qweight')) {
    throw new Error(`${weightsFile}: has no tensor 'lm_head.qweight', but ${configPath} says the LM head is GPTQ-quantised (quantization_config.lm_head: true); ` +
      'the checkpoint is incomplete, or the flag is wrong');
  }
  if (!quantizedHead && where.has('lm_head.qweight') && !where.has('lm_head.weight')) {
    throw new Error(`${weightsFile}: holds a GPTQ-quantised LM head ('lm_head.qweight'), but ${configPath} does not say so; add "lm_head": true to its quantization_config`);
  }
}

/**
 * Builds the model from loaded weights; a missing or mis-shaped tensor is reported with the file it came
 * from (or the directory when it is missing) and config.json, since one of the two is wrong.
 */
export function modelFromLoaded(dir: string, loaded: LoadedModelDir, maxPositions = loaded.config.maxPositions): LlamaModel {
  try {
    const model = new LlamaModel({ ...loaded.config, maxPositions }, new Map<string, Tensor | Bf16Matrix>([...loaded.weights, ...loaded.bf16]));
    for (const [prefix, qw] of loaded.quantized) {
      if (prefix === 'lm_head') {
        model.lmHead = new QuantLinear(model.lmHead as Linear, qw); // untied (parseHfConfig): its own float Linear
        continue;
      }
      const m = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$/.exec(prefix)!;
      const layer = model.layers[Number(m[1])], p = m[2] as ProjectionName;
      layer.proj[p] = new QuantLinear(layer.proj[p] as Linear, qw);
    }
    return model;
  } catch (e) {
    const name = /'([^']+)'/.exec((e as Error).message)?.[1];
    const where = (name && loaded.sources.get(name)) ?? dir;
    throw new Error(`${where}: ${(e as Error).message} (the weights do not match ${join(dir, CONFIG)})`, { cause: e });
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
  /** storage dtype (default F32); BF16 rounds to nearest even */
  dtype?: 'F32' | 'BF16';
  /** shard when the weights exceed this many bytes (default 2 GiB) */
  shardBytes?: number;
  /** replace the model files of a directory that already holds a model (other files are kept) */
  overwrite?: boolean;
}

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
    if (model.config.tieWordEmbeddings) throw new Error('saveModelDir: the LM head is quantised but the config ties it to the embedding (set tieWordEmbeddings false: a quantised head is its own module)');
    out.set('lm_head', model.lmHead.qw);
  }
  return out;
}

/** Files saveModelDir owns in a model directory; anything else (tokenizer files, …) is left alone. */
const isModelFile = (f: string) => f === CONFIG || f === SINGLE || f === INDEX || SHARD_RE.test(f);

/**
 * Writes config.json (via toHfConfig) and the weights as model.safetensors, or as shards plus
 * model.safetensors.index.json when they exceed `shardBytes`. Every projection must be a plain Linear
 * (merge adapters first). The new files appear all at once: they are written into a temporary directory
 * that replaces the target by rename.
 */
export function saveModelDir(dir: string, model: LlamaModel, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const shardBytes = opts.shardBytes ?? 2 * 1024 ** 3;
  const params = model.namedParameters();
  const names = expectedTensorNames(model.config);
  const missing = names.filter((n) => !params.has(n));
  if (missing.length) throw new Error(`saveModelDir: the model has no plain tensor for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''} (merge adapters into their base weights before saving)`);

  // Greedy sharding in model order; a tensor larger than shardBytes gets a shard of its own.
  const shards: Record<string, TensorToWrite>[] = [{}];
  let used = 0, total = 0;
  const quantized = quantizedModules(model);
  const format = formatFor(quantized.values());
  for (const name of names) {
    const t = params.get(name)!;
    const qw = quantized.get(name.replace(/\.weight$/, ''));
    if (qw) {
      const tensors = gptqTensors(name.replace(/\.weight$/, ''), qw, format);
      const bytes = Object.values(tensors).reduce((a, x) => a + x.data.byteLength, 0);
      if (used > 0 && used + bytes > shardBytes) { shards.push({}); used = 0; }
      Object.assign(shards[shards.length - 1], tensors);
      used += bytes;
      total += bytes;
      continue;
    }
    const data = t.contiguousData();
    const bytes = t.size * (dtype === 'BF16' ? 2 : 4);
    if (used > 0 && used + bytes > shardBytes) { shards.push({}); used = 0; }
    shards[shards.length - 1][name] = { dtype, shape: t.shape, data: data instanceof Float32Array ? data : Float32Array.from(data) };
    used += bytes;
    total += bytes;
  }

  const first = quantized.values().next().value as QuantizedWeight | undefined;
  const quantization = first ? { bits: first.bits, groupSize: first.groupSize, descAct: model.config.quantization?.descAct ?? false, sym: false, format, lmHead: quantized.has('lm_head') } : null;
  const hf = toHfConfig({ ...model.config, quantization }, opts.hfConfig);
  hf.torch_dtype = dtype === 'BF16' ? 'bfloat16' : 'float32';
  if ('dtype' in hf) hf.dtype = hf.torch_dtype; // transformers ≥ 5 spelling

  const target = resolve(dir);
  if (existsSync(target) && !statSync(target).isDirectory()) throw new Error(`${target}: exists and is not a directory`);
  const existing = existsSync(target) ? readdirSync(target) : [];
  if (existing.some(isModelFile) && !opts.overwrite) {
    throw new Error(`${target}: already holds a model (${existing.filter(isModelFile).join(', ')}); choose another directory or pass overwrite: true`);
  }
  mkdirSync(dirname(target), { recursive: true });
  const tmp = mkdtempSync(join(dirname(target), `.${basename(target)}.tmp-`));
  try {
    writeFileSync(join(tmp, CONFIG), `${hfJson(hf)}\n`);
    const meta = { format: 'pt' }; // transformers refuses safetensors files without format metadata
    if (shards.length === 1) {
      writeSafetensors(join(tmp, SINGLE), shards[0], meta);
    } else {
      const weightMap: Record<string, string> = {};
      shards.forEach((tensors, i) => {
        const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
        writeSafetensors(join(tmp, file), tensors, meta);
        for (const name of Object.keys(tensors)) weightMap[name] = file;
      });
      writeFileSync(join(tmp, INDEX), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
    }
    swapIn(tmp, target, existing);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Puts the finished directory `tmp` at `target`. A non-empty target is moved aside first; its non-model
 * files are then moved into the new directory and the old one removed. Readers see the old model or the
 * new one, never a mix.
 */
function swapIn(tmp: string, target: string, existing: string[]): void {
  if (existing.length === 0) {
    if (existsSync(target)) rmSync(target, { recursive: true }); // empty directory
    renameSync(tmp, target);
    return;
  }
  const old = `${tmp}.old`;
  renameSync(target, old);
  renameSync(tmp, target);
  for (const f of existing) if (!isModelFile(f)) renameSync(join(old, f), join(target, f));
  rmSync(old, { recursive: true, force: true });
}

/** Fields transformers types as float: written with a decimal point (10000.0) as Python's json does. */
const FLOAT_KEYS = new Set(['rope_theta', 'rms_norm_eps', 'factor', 'low_freq_factor', 'high_freq_factor', 'attention_factor',
  'beta_fast', 'beta_slow', 'partial_rotary_factor', 'attention_dropout', 'initializer_range', 'hidden_dropout', 'mlp_dropout']);

/** JSON like transformers' save_pretrained: sorted keys, 2-space indent, floats kept floats. */
export function hfJson(v: unknown, indent = '', key = ''): string {
  const inner = `${indent}  `;
  if (typeof v === 'number' && FLOAT_KEYS.has(key) && Number.isInteger(v)) return v.toFixed(1);
  if (Array.isArray(v)) return v.length ? `[\n${v.map((x) => inner + hfJson(x, inner)).join(',\n')}\n${indent}]` : '[]';
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
  if (!keys.length) return '{}';
  return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${hfJson((v as Record<string, unknown>)[k], inner, k)}`).join(',\n')}\n${indent}}`;
}

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'] as const;

/** Copies the tokenizer/generation files present in srcDir to dstDir (written fresh, not read-only); returns the copied names. */
export function copyTokenizerFiles(srcDir: string, dstDir: string): string[] {
  const copied: string[] = [];
  mkdirSync(dstDir, { recursive: true });
  for (const f of TOKENIZER_FILES) {
    const src = join(srcDir, f);
    if (!existsSync(src)) continue;
    const tmp = join(dstDir, `.${f}.${process.pid}.tmp`);
    writeFileSync(tmp, readFileSync(src));
    renameSync(tmp, join(dstDir, f));
    copied.push(f);
  }
  return copied;
}
