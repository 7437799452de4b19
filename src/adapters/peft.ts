/**
 * Attaching LoRA adapters to a model, and saving/loading them in PEFT's format so PEFT-trained adapters
 * load in lonas and lonas adapters load in PEFT:
 *   adapter_model.safetensors  base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight (r, in), …lora_B.weight (out, r)
 *   adapter_config.json        peft_type LORA, r, lora_alpha, lora_dropout, target_modules, rank_pattern, alpha_pattern, …
 * lonas writes its own extras (the search space, the adapter mode, and — when the MLP channels were reordered
 * by importance before training — the per-layer channel order) to lonas_adapter.json beside them; PEFT
 * ignores that file. Tensors are always stored in the base model's own channel order, so the adapter means
 * the same on the unchanged base in PEFT; lonas re-applies a recorded order when it loads the adapter
 * (src/adapters/channel-order.ts), so first-k slicing of the MLP width keeps the channels training kept.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { z } from 'zod';
import { join, resolve } from 'node:path';
import { Rng, Tensor } from '../tensor/index.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../io/files.ts';
import { LONAS_ADAPTER, readLonasAdapter, writeLonasAdapter } from '../io/artifacts.ts';
import type { AdapterBaseRecord, LonasAdapterInfo } from '../io/artifacts.ts';
import { weightsFingerprint } from '../io/hf-dir.ts';
import { PROJECTIONS, projectionWeightName } from '../models/llama/model.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import { adapterInBaseOrder, mlpChannelOrder, permuteLayerMlp, permuteMlpChannels, validateChannelOrder } from './channel-order.ts';
import type { ChannelOrder } from './channel-order.ts';
import { LoraLinear, wrapWithLora } from './lora.ts';
import type { AdapterMode, LoraOptions } from './lora.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { enableQuantAware, enableSparsePeft } from './sqft.ts';

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
  targets: ProjectionName[];
}

/**
 * The search space an adapter was trained with, written and read back as given: its schema and validation
 * live with the search (src/nas/search-space.ts parseSearchSpace), which builds on adapters, not the reverse.
 */
export type StoredSearchSpace = NonNullable<LonasAdapterInfo['search_space']>;

export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_README = 'README.md';

/** PEFT's prefix for a layer projection. */
export function peftModuleName(layer: number, proj: ProjectionName): string {
  return `base_model.model.${projectionWeightName(layer, proj)}`;
}

/** Wraps every target projection of every layer in a fresh LoRA (A Kaiming-uniform from `seed`, B zero). */
export function addLora(model: LlamaModel, s: LoraSettings, seed: number): LoraLinear[] {
  const rng = new Rng(seed);
  const added: LoraLinear[] = [];
  model.layers.forEach((layer, i) => {
    for (const p of s.targets) {
      const lora = wrapWithLora(layer.proj[p], peftModuleName(i, p), s, { rng });
      layer.proj[p] = lora;
      added.push(lora);
    }
  });
  return added;
}

export function loraModules(model: LlamaModel): LoraLinear[] {
  return model.layers.flatMap((l) => PROJECTIONS.map((p) => l.proj[p]).filter((m): m is LoraLinear => m instanceof LoraLinear));
}

/**
 * Writes adapter_model.safetensors + adapter_config.json (+ lonas_adapter.json), each file atomically. If the
 * model's MLP channels were reordered in memory, the tensors are saved in the base's order and the order is
 * recorded (`mlp_channel_order`).
 */
export function saveAdapter(
  dir: string,
  model: LlamaModel,
  s: LoraSettings,
  extra: { baseModel?: string; searchSpace?: StoredSearchSpace; mode?: AdapterMode; base?: AdapterBaseRecord } = {},
): void {
  const order = mlpChannelOrder(model);
  const entries = model.layers.flatMap((layer, l) =>
    PROJECTIONS.flatMap((p) => {
      const m = layer.proj[p];
      return m instanceof LoraLinear
        ? [{ name: m.name, ...adapterInBaseOrder(m, p, order?.[l]), rank: m.rMax, alpha: m.alpha, dropout: m.dropoutP }]
        : [];
    }),
  );
  savePeftAdapter(dir, entries, { ...extra, targets: s.targets, dropout: s.dropout, channelOrder: order });
}

export interface AdapterEntry {
  /** PEFT module name, e.g. base_model.model.model.layers.0.self_attn.q_proj */
  name: string;
  a: Tensor; // (r, in)
  b: Tensor; // (out, r)
  rank: number;
  alpha: number;
  dropout: number;
}

/**
 * PEFT layout for adapters whose ranks may differ per module: the most common (rank, alpha) goes to
 * `r`/`lora_alpha`, the others to `rank_pattern`/`alpha_pattern` keyed by `layers.N.block.proj`, which
 * PEFT matches as a suffix of the module name.
 */
export function savePeftAdapter(
  dir: string,
  entries: AdapterEntry[],
  extra: {
    baseModel?: string;
    searchSpace?: StoredSearchSpace;
    targets?: string[];
    dropout?: number;
    mode?: AdapterMode;
    channelOrder?: ChannelOrder | null;
    /** the base model directory's fingerprint (adapterBaseRecord), checked by checkAdapterBase */
    base?: AdapterBaseRecord;
  } = {},
): void {
  if (entries.length === 0) throw new Error('saveAdapter: no adapter modules to save (every rank is 0?)');
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  const counts = new Map<string, number>();
  for (const e of entries) {
    tensors[`${e.name}.lora_A.weight`] = { dtype: 'F32', shape: e.a.shape, data: e.a.contiguousData() as Float32Array };
    tensors[`${e.name}.lora_B.weight`] = { dtype: 'F32', shape: e.b.shape, data: e.b.contiguousData() as Float32Array };
    const key = `${e.rank}/${e.alpha}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const [common] = [...counts.entries()].sort((x, y) => y[1] - x[1])[0];
  const [r, alpha] = common.split('/').map(Number);
  const rankPattern: Record<string, number> = {},
    alphaPattern: Record<string, number> = {};
  for (const e of entries) {
    const key = e.name.replace(/^base_model\.model\.model\./, '');
    if (e.rank !== r) rankPattern[key] = e.rank;
    if (e.alpha !== alpha) alphaPattern[key] = e.alpha;
  }
  const targets = extra.targets ?? [...new Set(entries.map((e) => e.name.split('.').pop()!))];
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  writeJsonAtomic(join(dir, ADAPTER_CONFIG), {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: extra.baseModel ?? null,
    r,
    lora_alpha: alpha,
    lora_dropout: extra.dropout ?? entries[0].dropout,
    target_modules: targets,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    use_rslora: false,
    use_dora: false,
    layers_to_transform: null,
  });
  writeFileAtomic(join(dir, ADAPTER_README), adapterReadme(extra.mode ?? 'lora'));
  writeLonasAdapter(dir, {
    format: 1,
    search_space: extra.searchSpace ?? { groups: [] },
    mode: extra.mode ?? 'lora',
    ...(extra.channelOrder ? { mlp_channel_order: extra.channelOrder } : {}),
    ...(extra.base ? { base: extra.base } : {}),
  });
}

/** The record of the base model in `modelDir` that an adapter trained on it keeps in lonas_adapter.json. */
export function adapterBaseRecord(modelDir: string): AdapterBaseRecord {
  return { model: resolve(modelDir), ...weightsFingerprint(modelDir) };
}

/**
 * Refuses to apply an adapter to a base other than the one it was trained on (its lonas_adapter.json
 * `base` record, compared with the fingerprint of `modelDir`); adapters without the record load unchecked.
 */
export function checkAdapterBase(modelDir: string, adapterDir: string): void {
  const recorded = readLonasAdapter(adapterDir).base;
  if (!recorded) return;
  const actual = weightsFingerprint(modelDir);
  const problem =
    recorded.shapes_sha256 !== actual.shapes_sha256
      ? `its tensor names or shapes differ (${actual.tensors} tensors, shapes ${actual.shapes_sha256.slice(0, 12)} vs ${recorded.tensors}, ${recorded.shapes_sha256.slice(0, 12)}): another architecture or size`
      : recorded.sample_sha256 !== actual.sample_sha256
        ? `same shapes, different weights (weights ${actual.sample_sha256.slice(0, 12)} vs ${recorded.sample_sha256.slice(0, 12)}): a pruned, quantized or otherwise changed copy?`
        : null;
  if (problem)
    throw new Error(
      `${join(adapterDir, LONAS_ADAPTER)}: the adapter in ${resolve(adapterDir)} was trained on the base ${recorded.model ?? '(path not recorded)'}, ` +
        `but --model ${resolve(modelDir)} is not that base: ${problem}. Apply it to the model it was trained on.`,
    );
}

/**
 * The README.md beside an adapter (where PEFT writes its model card): whether PEFT computes the function lonas
 * trained. PEFT applies y = Wx + s·BAx; SparsePEFT trained (s·BA) ⊙ M and QA-SparsePEFT trained through the
 * base's INT4 grid, which PEFT knows nothing of.
 */
function adapterReadme(mode: AdapterMode): string {
  const head =
    '# LoRA adapter written by lonas\n\nFiles: adapter_model.safetensors + adapter_config.json (PEFT format), lonas_adapter.json (lonas extras).\n\n';
  if (mode === 'lora')
    return `${head}Mode: plain LoRA. PEFT loads it on the same base model and computes the same function as lonas at full width.\n`;
  const what =
    mode === 'sparse'
      ? "SparsePEFT: lonas computes W + (s·BA) ⊙ M, M the base weight's non-zero pattern"
      : "QA-SparsePEFT: lonas computes the base's INT4 quantiser applied to W + (s·BA) ⊙ M (on the base's fixed grid)";
  return (
    `${head}Mode: ${what}.\n\n` +
    '**PEFT computes a different function with this adapter**: it loads (same tensor names) but applies the unmasked ' +
    'W + s·BA, so its outputs and perplexity are not those lonas measured. Use it with lonas (`lonas merge` writes the ' +
    'merged model lonas evaluated, which any tool can load).\n'
  );
}

/**
 * The adapter_config.json fields lonas reads. Every field that changes the function PEFT computes is either
 * honoured (r, lora_alpha, rank_pattern, alpha_pattern, use_rslora, layers_to_transform) or refused with the
 * field named (DoRA, fan_in_fan_out, bias, modules_to_save, a layers_pattern other than Llama's "layers").
 */
const patternSchema = z.record(z.string(), z.number().positive()).nullish();
const peftConfigSchema = z.object({
  peft_type: z.literal('LORA', { errorMap: () => ({ message: 'lonas loads LORA adapters only' }) }),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).max(1).default(0),
  rank_pattern: patternSchema,
  alpha_pattern: patternSchema,
  use_rslora: z.boolean().default(false),
  use_dora: z.literal(false, { errorMap: () => ({ message: 'DoRA adapters (use_dora: true) are not supported' }) }).default(false),
  fan_in_fan_out: z
    .literal(false, { errorMap: () => ({ message: 'fan_in_fan_out adapters (GPT-2 style Conv1D) are not supported' }) })
    .default(false),
  bias: z.literal('none', { errorMap: () => ({ message: 'only "none" is supported (lonas adapters train no biases)' }) }).default('none'),
  modules_to_save: z
    .array(z.string())
    .max(0, { message: 'lonas cannot load fully trained module copies; merge them in PEFT (merge_and_unload) first' })
    .nullish(),
  layers_to_transform: z
    .union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())])
    .nullish()
    .default(null),
  layers_pattern: z
    .union([z.literal('layers'), z.array(z.literal('layers')).length(1)], {
      errorMap: () => ({ message: 'Llama models name their layer list "layers"; other patterns are not supported' }),
    })
    .nullish(),
});

function readPeftConfig(path: string): z.output<typeof peftConfigSchema> {
  const raw = readJsonFile(path, 'the PEFT adapter config') as Record<string, unknown>;
  const parsed = peftConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `field "${i.path.join('.')}" = ${JSON.stringify(raw[String(i.path[0])])}: ${i.message}`);
  throw new Error(`${path}: ${issues.join('; ')}`);
}

/** The most specific rank_pattern/alpha_pattern key matching a module (PEFT matches by suffix or regex). */
function patternValue(pattern: Record<string, number> | null | undefined, module: string): number | undefined {
  if (!pattern) return undefined;
  for (const [key, v] of Object.entries(pattern)) {
    if (module === key || module.endsWith(`.${key}`)) return v;
    try {
      if (new RegExp(`(^|\\.)${key}$`).test(module)) return v;
    } catch {
      /* not a regex */
    }
  }
  return undefined;
}

/** One adapter module as read from disk: its PEFT name, tensors and settings. */
export interface StoredAdapterModule {
  name: string;
  a: Tensor; // (r, in)
  b: Tensor; // (out, r)
  opts: LoraOptions;
}

/** An adapter directory as read (no model needed): modules by layer and projection, and lonas's extras. */
export interface StoredAdapter {
  /** modules[layer][proj], only those present */
  modules: Partial<Record<ProjectionName, StoredAdapterModule>>[];
  settings: LoraSettings;
  searchSpace: StoredSearchSpace | null;
  mode: AdapterMode;
  channelOrder: ChannelOrder | null;
}

/**
 * Reads a PEFT LoRA adapter for a model of config `c`: every module's A and B (validated against the PEFT
 * config) and lonas_adapter.json. An adapter is small beside its base, so it is read whole.
 */
export function readAdapter(c: LlamaConfig, dir: string): StoredAdapter {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgPath)) throw new Error(`${dir}: no ${ADAPTER_CONFIG} found (is this a LoRA adapter directory?)`);
  const cfg = readPeftConfig(cfgPath);
  /** the layers PEFT put adapters on (layers_to_transform; null: every layer) */
  const layers = cfg.layers_to_transform === null ? null : new Set([cfg.layers_to_transform].flat());
  /** PEFT's scaling is alpha/r, or alpha/sqrt(r) with use_rslora; lonas's is alpha/r_max, so rsLoRA loads as alpha·sqrt(r) */
  const effectiveAlpha = (alpha: number, rank: number) => (cfg.use_rslora ? alpha * Math.sqrt(rank) : alpha);
  const st = new SafetensorsFile(join(dir, ADAPTER_WEIGHTS));
  try {
    const targets = new Set<ProjectionName>();
    let loaded = 0;
    const modules = c.layers.map((_, i) => {
      const found: Partial<Record<ProjectionName, StoredAdapterModule>> = {};
      for (const p of PROJECTIONS) {
        const name = peftModuleName(i, p);
        // PEFT writes `…lora_A.weight`; some versions keep the adapter name: `…lora_A.default.weight`
        const keyOf = (part: string) => [`${name}.${part}.weight`, `${name}.${part}.default.weight`].find((k) => st.has(k));
        const aKey = keyOf('lora_A');
        if (!aKey) continue;
        if (layers && !layers.has(i))
          throw new Error(
            `${st.path}: ${aKey} is for layer ${i}, but ${cfgPath} field "layers_to_transform" = ${JSON.stringify(cfg.layers_to_transform)} excludes it (adapter and config do not match)`,
          );
        const bKey = keyOf('lora_B');
        if (!bKey) throw new Error(`${st.path}: ${aKey} has no matching lora_B tensor`);
        const a = st.readFloat32(aKey),
          b = st.readFloat32(bKey);
        const rank = patternValue(cfg.rank_pattern, name) ?? cfg.r;
        const alpha = effectiveAlpha(patternValue(cfg.alpha_pattern, name) ?? cfg.lora_alpha, rank);
        if (a.shape[0] !== rank) throw new Error(`${st.path}: ${aKey} has rank ${a.shape[0]} but adapter_config.json says r = ${rank}`);
        found[p] = {
          name,
          a: new Tensor(a.data, a.shape),
          b: new Tensor(b.data, b.shape),
          opts: { rank, alpha, dropout: cfg.lora_dropout },
        };
        targets.add(p);
        loaded++;
      }
      return found;
    });
    if (loaded === 0)
      throw new Error(
        `${st.path}: no LoRA tensors match this model's layers (expected names like ${peftModuleName(0, 'q_proj')}.lora_A.weight)`,
      );
    const lonasPath = join(dir, LONAS_ADAPTER);
    const lonas = readLonasAdapter(dir);
    const channelOrder =
      lonas.mlp_channel_order === undefined
        ? null
        : validateChannelOrder(lonas.mlp_channel_order, c, `${lonasPath}: field "mlp_channel_order"`);
    return {
      modules,
      settings: { rank: cfg.r, alpha: effectiveAlpha(cfg.lora_alpha, cfg.r), dropout: cfg.lora_dropout, targets: [...targets] },
      searchSpace: lonas.search_space ?? null,
      mode: lonas.mode,
      channelOrder,
    };
  } finally {
    st.close();
  }
}

/**
 * Wraps layer `l`'s projections in the stored adapter's modules (in place), sets their variant (SparsePEFT,
 * QA-SparsePEFT) and re-applies the adapter's MLP channel order: what loadAdapter does to each layer.
 * Returns the layer's adapters.
 */
export function attachLayerAdapter(proj: Record<ProjectionName, LinearLike>, l: number, adapter: StoredAdapter): LoraLinear[] {
  const loras: LoraLinear[] = [];
  for (const p of PROJECTIONS) {
    const m = adapter.modules[l][p];
    if (!m) continue;
    const lora = wrapWithLora(proj[p], m.name, m.opts, { a: m.a, b: m.b });
    proj[p] = lora;
    loras.push(lora);
  }
  if (adapter.mode === 'sparse' || adapter.mode === 'qa') enableSparsePeft(loras);
  if (adapter.mode === 'qa') enableQuantAware(loras);
  if (adapter.channelOrder) permuteLayerMlp(proj, adapter.channelOrder[l], l); // masks and adapters move with their channels
  return loras;
}

/**
 * Loads a PEFT LoRA adapter onto `model` (whose projections must be plain Linears). Returns the settings
 * and, when lonas wrote it, the search space the adapter was trained with. An adapter trained with
 * reordered MLP channels (`mlp_channel_order` in lonas_adapter.json) leaves the model permuted the same way
 * (the function at full width is unchanged; narrower MLP widths keep the channels training kept).
 */
export function loadAdapter(
  model: LlamaModel,
  dir: string,
): { settings: LoraSettings; searchSpace: StoredSearchSpace | null; mode: AdapterMode; channelOrder: ChannelOrder | null } {
  const adapter = readAdapter(model.config, dir);
  const { channelOrder } = adapter;
  // the order is applied through permuteMlpChannels (once for the model), which records it beside the model for saving
  model.layers.forEach((layer, l) => attachLayerAdapter(layer.proj, l, { ...adapter, channelOrder: null }));
  if (channelOrder) permuteMlpChannels(model, channelOrder);
  return { settings: adapter.settings, searchSpace: adapter.searchSpace, mode: adapter.mode, channelOrder };
}
