/**
 * Hugging Face `config.json` ⇄ LlamaConfig, for the Llama family (llama, mistral, qwen2).
 *
 * Absent fields take the defaults of the matching transformers config class, so a config.json means here
 * what it means to transformers. Anything lonas cannot compute faithfully (other RoPE scalings, MLP or
 * o_proj biases, other activations, quantized weights) is refused with an error naming the file and the
 * field: `<file>: field "<path>" = <value> <problem> (<what to do>)`, one line per problem.
 *
 * lonas extension: `lonas_layers`, an optional array (one entry per layer) of
 * `{intermediate_size, num_attention_heads, num_key_value_heads}` for sub-networks extracted from an elastic
 * super-network. When it is present the global sizes are only the maxima over the layers.
 */
import { z } from 'zod';
import { GPTQ_BITS, GPTQ_BITS_TEXT } from '../../io/gptq-format.ts';
import type { LayerSizes, LlamaConfig, GptqConfig } from './config.ts';
import type { RopeScaling } from '../../nn/rope.ts';

/** transformers' per-family defaults for fields a config.json may leave out. */
const FAMILIES = {
  llama: { arch: 'LlamaForCausalLM', kvHeads: null as number | null, maxPositions: 2048, slidingWindow: null as number | null },
  mistral: { arch: 'MistralForCausalLM', kvHeads: 8, maxPositions: 4096 * 32, slidingWindow: 4096 },
  qwen2: { arch: 'Qwen2ForCausalLM', kvHeads: 32, maxPositions: 32768, slidingWindow: 4096 },
} as const;
export type HfFamily = keyof typeof FAMILIES;
const FAMILY_NAMES = Object.keys(FAMILIES) as HfFamily[];
const ARCHS = FAMILY_NAMES.map((f) => FAMILIES[f].arch);
const ROPE_TYPES = ['linear', 'llama3'];

export class HfConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'HfConfigError';
  }
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};
const fieldPath = (path: (string | number)[]): string => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
const valueAt = (root: unknown, path: (string | number)[]): unknown =>
  path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined), root);

/** One zod issue → `field "a.b" = 3 must be ... (...)`. Custom issues carry the whole problem text. */
function describeIssue(issue: z.ZodIssue, root: unknown): string {
  const field = `field "${fieldPath(issue.path)}"`;
  const value = valueAt(root, issue.path);
  if (value === undefined && (issue.code !== 'custom' || issue.params?.missing)) {
    const hint =
      issue.code === 'custom'
        ? issue.message
        : issue.path[0] === 'lonas_layers'
          ? 'each lonas_layers entry needs intermediate_size, num_attention_heads, num_key_value_heads'
          : 'add it: every Llama-family config.json has it';
    return `${field} is missing (${hint})`;
  }
  let problem: string;
  switch (issue.code) {
    case 'invalid_type':
      problem =
        issue.expected === 'integer'
          ? 'must be an integer'
          : `must be ${issue.expected === 'number' ? 'a number' : `of type ${issue.expected}`}`;
      break;
    case 'too_small':
      problem =
        issue.type === 'array' ? `must have at least ${issue.minimum} entries` : `must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum}`;
      break;
    case 'unrecognized_keys':
      problem = `has unknown keys ${issue.keys.join(', ')} (allowed: intermediate_size, num_attention_heads, num_key_value_heads)`;
      break;
    default:
      problem = issue.message;
  }
  return `${field} = ${show(value)} ${problem}`;
}

const posInt = z.number().int().positive();
const rope = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: posInt.optional(),
    rope_theta: z.number().positive().optional(), // transformers ≥ 5 keeps theta inside `rope_parameters`
  })
  .passthrough()
  .nullish();
const layerSizes = z.object({ intermediate_size: posInt, num_attention_heads: posInt, num_key_value_heads: posInt }).strict();

const schema = z
  .object({
    vocab_size: posInt,
    hidden_size: posInt,
    intermediate_size: posInt,
    num_hidden_layers: posInt,
    num_attention_heads: posInt,
    num_key_value_heads: posInt.nullish(),
    head_dim: posInt.nullish(),
    rms_norm_eps: z.number().positive().optional(),
    rope_theta: z.number().positive().optional(),
    rope_scaling: rope,
    rope_parameters: rope,
    max_position_embeddings: posInt.optional(),
    tie_word_embeddings: z.boolean().optional(),
    attention_bias: z.boolean().optional(),
    mlp_bias: z.boolean().optional(),
    hidden_act: z.string().optional(),
    sliding_window: posInt.nullish(),
    use_sliding_window: z.boolean().optional(),
    max_window_layers: z.number().int().nonnegative().optional(),
    layer_types: z.array(z.string()).optional(),
    quantization_config: z.unknown().optional(),
    lonas_layers: z.array(layerSizes).optional(),
  })
  .passthrough();
type RawConfig = z.infer<typeof schema>;

/** The model family from `model_type`, else `architectures`; refuses anything outside the Llama family. */
export function hfFamily(json: Record<string, unknown>, file: string): HfFamily {
  const { model_type: mt, architectures: archs } = json;
  const supported = `supported: model_type ${FAMILY_NAMES.join(', ')}; architectures ${ARCHS.join(', ')}`;
  if (archs !== undefined && (!Array.isArray(archs) || archs.length === 0 || archs.some((a) => !ARCHS.includes(a)))) {
    throw new HfConfigError(file, [`field "architectures" = ${show(archs)} is not supported (${supported})`]);
  }
  const fromArch = archs ? FAMILY_NAMES[ARCHS.indexOf(archs[0])] : undefined;
  if (mt === undefined) {
    if (fromArch) return fromArch;
    throw new HfConfigError(file, [`field "model_type" is missing and so is "architectures" (set model_type; ${supported})`]);
  }
  if (typeof mt !== 'string' || !(FAMILY_NAMES as string[]).includes(mt)) {
    throw new HfConfigError(file, [`field "model_type" = ${show(mt)} is not supported (lonas runs Llama-family decoders; ${supported})`]);
  }
  if (fromArch && fromArch !== mt) {
    throw new HfConfigError(file, [
      `field "architectures" = ${show(archs)} does not match model_type "${mt}" (expected ["${FAMILIES[mt as HfFamily].arch}"])`,
    ]);
  }
  return mt as HfFamily;
}

/** Refusals and cross-field checks that need more than one field (reported as zod issues). */
function checkSemantics(c: RawConfig, family: HfFamily, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string, missing = false) =>
    ctx.addIssue({ code: z.ZodIssueCode.custom, path, message, params: { missing } });
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu' && c.hidden_act !== 'swish') {
    issue(['hidden_act'], 'is not supported (supported: silu; lonas implements SwiGLU MLPs only)');
  }
  if (c.mlp_bias) issue(['mlp_bias'], 'is not supported (lonas MLP projections have no bias; only mlp_bias: false works)');
  // Llama's attention_bias adds a bias to o_proj as well as q/k/v; LlamaModel only has Qwen2's q/k/v biases.
  if (family === 'llama' && c.attention_bias)
    issue(['attention_bias'], 'is not supported for llama (it adds an o_proj bias lonas does not model; only false works)');
  const q = c.quantization_config as Record<string, unknown> | null | undefined;
  if (q !== undefined && q !== null) {
    if (q.quant_method !== 'gptq')
      issue(
        ['quantization_config', 'quant_method'],
        'is not supported (lonas loads GPTQ checkpoints; others: dequantise first)', // the field's value is printed before the message
      );
    else {
      if (!GPTQ_BITS.includes(q.bits as number)) issue(['quantization_config', 'bits'], `must be ${GPTQ_BITS_TEXT}`);
      const fmt = q.checkpoint_format ?? 'gptq';
      if (fmt !== 'gptq' && fmt !== 'gptq_v2') issue(['quantization_config', 'checkpoint_format'], 'is not supported (gptq or gptq_v2)');
      if (q.lm_head !== undefined && typeof q.lm_head !== 'boolean')
        issue(['quantization_config', 'lm_head'], 'must be true or false (whether the LM head is GPTQ-quantised)');
    }
  }
  const ropeField = c.rope_parameters ? 'rope_parameters' : 'rope_scaling';
  const r = c[ropeField];
  if (r) {
    const typeKey = r.rope_type !== undefined ? 'rope_type' : 'type';
    const t = r[typeKey];
    if (t === undefined) issue([ropeField, 'rope_type'], `add "rope_type" (one of default, ${ROPE_TYPES.join(', ')})`, true);
    else if (t !== 'default' && !ROPE_TYPES.includes(t))
      issue([ropeField, typeKey], `is not supported (supported: ${ROPE_TYPES.join(', ')}; or null for none)`);
    const need =
      t === 'linear'
        ? ['factor']
        : t === 'llama3'
          ? ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']
          : [];
    for (const k of need) if ((r as Record<string, unknown>)[k] === undefined) issue([ropeField, k], `${t} RoPE scaling needs it`, true);
    if (
      t === 'llama3' &&
      r.low_freq_factor !== undefined &&
      r.high_freq_factor !== undefined &&
      !(r.high_freq_factor > r.low_freq_factor)
    ) {
      issue([ropeField, 'high_freq_factor'], `must be greater than low_freq_factor (${r.low_freq_factor})`);
    }
  }
  const heads = c.num_attention_heads;
  if (c.head_dim == null && c.hidden_size % heads !== 0) {
    issue(['head_dim'], `set head_dim: hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${heads}`, true);
  }
  const headDim = c.head_dim ?? c.hidden_size / heads;
  if (Number.isInteger(headDim) && headDim % 2 !== 0)
    issue([c.head_dim == null ? 'hidden_size' : 'head_dim'], `gives head_dim ${headDim}, which must be even for RoPE`);
  if (c.lonas_layers) {
    if (c.lonas_layers.length !== c.num_hidden_layers) {
      issue(['lonas_layers'], `has ${c.lonas_layers.length} entries but num_hidden_layers is ${c.num_hidden_layers} (one entry per layer)`);
    }
    c.lonas_layers.forEach((l, i) => {
      if (l.num_attention_heads % l.num_key_value_heads !== 0) {
        issue(['lonas_layers', i, 'num_key_value_heads'], `must divide num_attention_heads (${l.num_attention_heads})`);
      }
    });
  } else {
    const kv = c.num_key_value_heads ?? FAMILIES[family].kvHeads ?? heads;
    if (heads % kv !== 0) {
      if (c.num_key_value_heads == null)
        issue(['num_attention_heads'], `is not a multiple of the default num_key_value_heads ${kv} (set num_key_value_heads)`);
      else issue(['num_key_value_heads'], `must divide num_attention_heads (${heads})`);
    }
  }
}

function toRopeScaling(r: NonNullable<RawConfig['rope_scaling']>): RopeScaling | null {
  const t = r.rope_type ?? r.type;
  if (t === 'linear') return { type: 'linear', factor: r.factor! };
  if (t === 'llama3') {
    return {
      type: 'llama3',
      factor: r.factor!,
      lowFreqFactor: r.low_freq_factor!,
      highFreqFactor: r.high_freq_factor!,
      originalMaxPositions: r.original_max_position_embeddings!,
    };
  }
  return null; // 'default'
}

export interface ParseOptions {
  /** where warnings go (default: stderr) */
  warn?: (message: string) => void;
}

/** Validates a parsed config.json and returns the LlamaConfig lonas computes with. `file` is used in messages. */
export function parseHfConfig(json: unknown, file: string, opts: ParseOptions = {}): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new HfConfigError(file, [`must hold a JSON object, got ${Array.isArray(json) ? 'an array' : show(json)}`]);
  }
  const family = hfFamily(json as Record<string, unknown>, file);
  const parsed = schema.superRefine((c, ctx) => checkSemantics(c, family, ctx)).safeParse(json);
  if (!parsed.success)
    throw new HfConfigError(
      file,
      parsed.error.issues.map((i) => describeIssue(i, json)),
    );
  const c = parsed.data;
  const fam = FAMILIES[family];
  const heads = c.num_attention_heads;
  const layers: LayerSizes[] = c.lonas_layers
    ? c.lonas_layers.map((l) => ({
        intermediateSize: l.intermediate_size,
        numHeads: l.num_attention_heads,
        numKvHeads: l.num_key_value_heads,
      }))
    : Array.from({ length: c.num_hidden_layers }, () => ({
        intermediateSize: c.intermediate_size,
        numHeads: heads,
        numKvHeads: c.num_key_value_heads ?? fam.kvHeads ?? heads,
      }));
  const maxPositions = c.max_position_embeddings ?? fam.maxPositions;
  warnSlidingWindow(c, family, maxPositions, file, opts.warn ?? ((m) => process.stderr.write(`${m}\n`)));
  const r = c.rope_parameters ?? c.rope_scaling;
  const quantization = gptqConfig(c.quantization_config as Record<string, unknown> | null | undefined);
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    headDim: c.head_dim ?? Math.floor(c.hidden_size / heads),
    layers,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    ropeTheta: c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000,
    ropeScaling: r ? toRopeScaling(r) : null,
    maxPositions,
    // a GPTQ-quantised head (lm_head.qweight, …) is a module of its own, whatever the tie flag says
    tieWordEmbeddings: (c.tie_word_embeddings ?? false) && !quantization?.lmHead,
    attentionBias: family === 'qwen2', // Qwen2 always has q/k/v biases; llama's attention_bias is refused above
    quantization,
  };
}

function gptqConfig(q: Record<string, unknown> | null | undefined): GptqConfig | null {
  if (!q) return null;
  return {
    bits: q.bits as number,
    groupSize: typeof q.group_size === 'number' ? q.group_size : 128,
    descAct: !!q.desc_act,
    sym: q.sym === undefined ? true : !!q.sym,
    format: (q.checkpoint_format as GptqConfig['format'] | undefined) ?? 'gptq',
    ...(q.lm_head === true ? { lmHead: true } : {}),
  };
}

/** lonas attends over the whole context; say loudly when transformers would use a sliding window. */
function warnSlidingWindow(c: RawConfig, family: HfFamily, maxPositions: number, file: string, warn: (m: string) => void): void {
  const window = c.sliding_window === undefined ? FAMILIES[family].slidingWindow : c.sliding_window;
  let active = family === 'mistral' && window !== null;
  if (family === 'qwen2' && c.use_sliding_window && window !== null) {
    // transformers' Qwen2 slides only in layers listed as sliding (default: index >= max_window_layers)
    active = c.layer_types ? c.layer_types.includes('sliding_attention') : (c.max_window_layers ?? 28) < c.num_hidden_layers;
  }
  if (active && window !== null && window < maxPositions) {
    warn(
      `lonas: WARNING ${file}: field "sliding_window" = ${window}: lonas has no sliding-window attention and attends over the whole context; ` +
        `for sequences longer than ${window} tokens outputs will differ from transformers (max_position_embeddings is ${maxPositions})`,
    );
  }
}

const ropeToHf = (s: RopeScaling | null): Record<string, unknown> | null =>
  !s
    ? null
    : s.type === 'linear'
      ? { rope_type: 'linear', type: 'linear', factor: s.factor }
      : {
          rope_type: 'llama3',
          factor: s.factor,
          low_freq_factor: s.lowFreqFactor,
          high_freq_factor: s.highFreqFactor,
          original_max_position_embeddings: s.originalMaxPositions,
        };

/**
 * The config.json for `config`: a copy of `base` (unknown fields kept) with every field lonas models
 * overwritten. Global sizes are the maxima over layers; `lonas_layers` is written only when layers differ.
 */
export function toHfConfig(config: LlamaConfig, base: object = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  const family =
    'model_type' in out || 'architectures' in out ? hfFamily(out, 'toHfConfig base') : config.attentionBias ? 'qwen2' : 'llama';
  if (config.attentionBias !== (family === 'qwen2')) {
    throw new Error(`toHfConfig: a ${family} config cannot express attentionBias=${config.attentionBias} (only qwen2 has q/k/v biases)`);
  }
  out.model_type = family;
  out.architectures ??= [FAMILIES[family].arch];
  const L = config.layers;
  const max = (f: (l: LayerSizes) => number) => Math.max(...L.map(f));
  Object.assign(out, {
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: max((l) => l.intermediateSize),
    num_hidden_layers: L.length,
    num_attention_heads: max((l) => l.numHeads),
    num_key_value_heads: max((l) => l.numKvHeads),
    head_dim: config.headDim, // always explicit: hidden/heads need not hold for sub-networks
    rms_norm_eps: config.rmsNormEps,
    max_position_embeddings: config.maxPositions,
    tie_word_embeddings: config.tieWordEmbeddings,
    hidden_act: 'silu',
  });
  if (family === 'llama') out.attention_bias = false;
  if ('rope_parameters' in out) {
    // transformers ≥ 5 layout: theta lives inside rope_parameters
    out.rope_parameters = { ...(ropeToHf(config.ropeScaling) ?? { rope_type: 'default' }), rope_theta: config.ropeTheta };
    delete out.rope_theta;
    delete out.rope_scaling;
  } else {
    out.rope_theta = config.ropeTheta;
    out.rope_scaling = ropeToHf(config.ropeScaling);
  }
  const uniform = L.every(
    (l) => l.intermediateSize === L[0].intermediateSize && l.numHeads === L[0].numHeads && l.numKvHeads === L[0].numKvHeads,
  );
  if (config.quantization) {
    const q = config.quantization;
    const qc: Record<string, unknown> = {
      ...((out.quantization_config as object) ?? {}),
      quant_method: 'gptq',
      bits: q.bits,
      group_size: q.groupSize,
      desc_act: q.descAct,
      sym: q.sym,
      checkpoint_format: q.format,
    };
    if (q.lmHead) qc.lm_head = true;
    else delete qc.lm_head; // absent = the head is float
    if (q.modulesInBlock) qc.modules_in_block_to_quantize = [q.modulesInBlock];
    else delete qc.modules_in_block_to_quantize; // absent = every projection
    out.quantization_config = qc;
  } else delete out.quantization_config;
  if (uniform) delete out.lonas_layers;
  else
    out.lonas_layers = L.map((l) => ({
      intermediate_size: l.intermediateSize,
      num_attention_heads: l.numHeads,
      num_key_value_heads: l.numKvHeads,
    }));
  return out;
}
