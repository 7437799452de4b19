/**
 * The JSON files lonas writes beside models and runs, each with its schema and typed read/write. Every
 * reader and writer of these files goes through here; a malformed file gives an error naming the file and
 * the field ("<path>: field "options.seed": Expected number, received string").
 *
 *   <adapter>/run_config.json           what `lonas finetune` ran with (read back by `lonas search`)
 *   <adapter>/mlp_channel_order.json   the MLP channel order `finetune --reorder-channels` chose (for --resume)
 *   <adapter>/lonas_adapter.json        lonas's extras beside a PEFT adapter: search space, mode, channel order, base fingerprint
 *   <model>/lonas_compression.json      how `lonas sparsify` / `lonas quantize` made a model
 *   <model>/lonas_extract.json          provenance and sizes of an extracted sub-network
 *   <model>/lonas_merge.json            provenance of a merged model, and what requantising onto a GPTQ grid cost
 *   <search>/pareto.json, best.json     the search's front and chosen configuration (read by the report)
 *   eval --out FILE, bench --out FILE   accuracy summary and latency record (read by the report)
 *   <run>/stages/<stage>.json           a finished pipeline stage (its presence marks it done)
 *
 * Schemas name the fields lonas reads back (readers ignore any other field, so files with more fields still
 * load); writers are typed by the same schemas (z.input), so writer and reader cannot drift apart.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeJsonAtomic } from './files.ts';

/** One line per zod issue: `field "a.b": message` (the root is "(root)"). */
export function fieldErrors(error: z.ZodError): string {
  return error.issues.map((i) => `field "${i.path.join('.') || '(root)'}": ${i.message}`).join('; ');
}

/** Reads `path` and validates it against `schema`; errors name the file and each bad field. */
export function readArtifact<S extends z.ZodTypeAny>(path: string, schema: S, what: string): z.output<S> {
  const parsed = schema.safeParse(readJsonFile(path, what));
  if (!parsed.success) throw new Error(`${path}: not a valid ${what}: ${fieldErrors(parsed.error)}`);
  return parsed.data;
}

/** A JSON file of a fixed name inside a directory: `read(dir)` is null when the directory has none. */
function fileInDir<S extends z.ZodTypeAny>(name: string, schema: S, what: string) {
  return {
    write: (dir: string, value: z.input<S>): void => writeJsonAtomic(join(dir, name), value),
    read: (dir: string): z.output<S> | null => (existsSync(join(dir, name)) ? readArtifact(join(dir, name), schema, what) : null),
  };
}

/** A JSON file at a path the caller chooses (`lonas eval --out FILE`). */
function fileAt<S extends z.ZodTypeAny>(schema: S, what: string) {
  return {
    write: (path: string, value: z.input<S>): void => writeJsonAtomic(path, value),
    read: (path: string): z.output<S> => readArtifact(path, schema, what),
  };
}

const config = z.record(z.string(), z.number());

// ---------------------------------------------------------------------------------------------
// run_config.json: `options` holds every finetune option; the schema names those read back (the validation
// split and the tokenisation of training)

export const RUN_CONFIG = 'run_config.json';
const qaCodes = z.object({
  changed: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  /** |ΔW| in half quantisation steps: the largest, and what the top 1 % reach */
  max_half_steps: z.number().nonnegative(),
  p99_half_steps: z.number().nonnegative(),
  /** a learning rate to try when (almost) no code moved */
  suggested_lr: z.number().positive().nullable(),
});
export type QaCodesRecord = z.input<typeof qaCodes>;
const runConfig = fileInDir(
  RUN_CONFIG,
  z.object({
    command: z.literal('finetune'),
    options: z.object({
      data: z.string(),
      seed: z.number().int(),
      valSize: z.number().int().nonnegative().default(0),
      cutoffLen: z.number().int().positive().default(256),
      trainOnInputs: z.boolean().default(true),
    }),
    /** MPI ranks that trained it (data-parallel, src/dist); 1 without mpirun */
    world_size: z.number().int().positive().default(1),
    result: z.object({
      steps: z.number().int(),
      finalLoss: z.number(),
      valLoss: z.number().nullable(),
      tokensSeen: z.number(),
      seconds: z.number(),
    }),
    /** QA-SparsePEFT (src/adapters/sqft.ts qaCodeChanges): INT4 codes the merged adapter moves, of all its base codes */
    qa_codes: qaCodes.nullable().default(null),
    node: z.string(),
  }),
  'run_config.json (written by lonas finetune; pass --val FILE otherwise)',
);
export const writeRunConfig = runConfig.write;
/** The adapter's run_config.json, or null when it has none (an adapter not trained by lonas). */
export const readRunConfig = runConfig.read;

// ---------------------------------------------------------------------------------------------
// lonas_adapter.json: `search_space` is validated by src/nas/search-space.ts and `mlp_channel_order` by
// src/nas/channel-order.ts where they are used

export const LONAS_ADAPTER = 'lonas_adapter.json';
const lonasAdapterSchema = z.object({
  format: z.literal(1).default(1),
  search_space: z.object({ groups: z.array(z.unknown()) }).optional(),
  mode: z.enum(['lora', 'sparse', 'qa']).default('lora'),
  mlp_channel_order: z.unknown().optional(),
  /** the base model the adapter was trained on (src/io/hf-dir.ts weightsFingerprint); older adapters have none */
  base: z
    .object({
      model: z.string().nullable(),
      tensors: z.number().int().nonnegative(),
      shapes_sha256: z.string(),
      sample_sha256: z.string(),
    })
    .optional(),
});
const lonasAdapter = fileInDir(LONAS_ADAPTER, lonasAdapterSchema, 'lonas_adapter.json');
export type LonasAdapterInfo = z.output<typeof lonasAdapterSchema>;
export type AdapterBaseRecord = NonNullable<LonasAdapterInfo['base']>;
export const writeLonasAdapter = lonasAdapter.write;
/** lonas_adapter.json of an adapter directory; a PEFT adapter without one reads as a plain LoRA adapter. */
export const readLonasAdapter = (dir: string): LonasAdapterInfo => lonasAdapter.read(dir) ?? lonasAdapterSchema.parse({});

// ---------------------------------------------------------------------------------------------
// mlp_channel_order.json: the order `finetune --reorder-channels` chose, reused by --resume
// (`mlp_channel_order` is validated against the model by src/nas/channel-order.ts)

export const CHANNEL_ORDER_FILE = 'mlp_channel_order.json';
const channelOrder = fileInDir(
  CHANNEL_ORDER_FILE,
  z.object({ mode: z.enum(['magnitude', 'activation']), mlp_channel_order: z.array(z.array(z.number().int())) }),
  `${CHANNEL_ORDER_FILE} (delete it, or run without --resume)`,
);
export const writeChannelOrder = channelOrder.write;
export const readChannelOrder = channelOrder.read;

// ---------------------------------------------------------------------------------------------
// what merging an adapter onto a GPTQ base's fixed grid changed (src/nas/extract.ts mergeSubnet): the codes
// of `projections` adapted projections (`weights` codes, `codes_changed` of them moved) and the error of the
// requantised weights against the float merge W + ΔW

const requantization = z.object({
  projections: z.number().int().nonnegative(),
  weights: z.number().int().nonnegative(),
  codes_changed: z.number().int().nonnegative(),
  max_abs_error: z.number().nonnegative(),
  mean_abs_error: z.number().nonnegative(),
});
export type RequantizationRecord = z.input<typeof requantization>;

// ---------------------------------------------------------------------------------------------
// lonas_compression.json: how `lonas sparsify` or `lonas quantize` made a model (null: not compressed by lonas)

const compression = fileInDir(
  'lonas_compression.json',
  z.discriminatedUnion('method', [
    z.object({
      method: z.enum(['wanda', 'magnitude']),
      sparsity: z.number(),
      nm: z.string().nullable(),
      nsamples: z.number().int(),
      seqlen: z.number().int().nullable(),
      calib: z.string().nullable(),
      seed: z.number().int(),
      achieved_sparsity: z.number(),
      modules: z.unknown(),
    }),
    z.object({
      method: z.literal('gptq'),
      bits: z.number().int(),
      group_size: z.number().int(),
      act_order: z.boolean(),
      /** GPTQ's order (compress/calibrate.ts); absent in records written before it was an option (all at once) */
      true_sequential: z.boolean().optional(),
      damp: z.number(),
      nsamples: z.number().int(),
      seqlen: z.number().int(),
      calib: z.string(),
      seed: z.number().int(),
      source: z.string(),
      lm_head: z.boolean().default(false),
      /** module → exact zeros of its source weight, kept exactly zero by GPTQ (the output's sparsity; other zero codes are rounding) */
      kept_zeros: z.record(z.string(), z.number().int()).default({}),
      /** `lonas merge` of an adapter onto this grid: what requantising the merged weights changed */
      merge_requantization: requantization.optional(),
    }),
  ]),
  'lonas_compression.json',
);
export const writeCompression = compression.write;
export const readCompression = compression.read;

// ---------------------------------------------------------------------------------------------
// lonas_extract.json: provenance and sizes of an extracted sub-network

const extractRecord = fileInDir(
  'lonas_extract.json',
  z.object({
    format: z.literal(1),
    source_model: z.string(),
    adapter: z.string(),
    subnet: z.string(),
    config: config.nullable(),
    merged: z.boolean(),
    dtype: z.enum(['f32', 'bf16', 'f16']),
    /** a GPTQ base written in float (--dequantize) */
    dequantized: z.boolean().default(false),
    /** merged onto a GPTQ base's grid: what requantising changed (null: nothing requantised) */
    requantization: requantization.nullable().default(null),
    adapter_dir: z.string().nullable(),
    params: z.object({ base: z.number(), extracted: z.number(), extracted_adapter: z.number() }),
    macs_1x256: z.object({ base: z.number(), extracted: z.number() }),
  }),
  'lonas_extract.json',
);
export const writeExtractRecord = extractRecord.write;

// ---------------------------------------------------------------------------------------------
// lonas_merge.json: provenance of a merged model (`lonas merge`) and, onto a GPTQ base, what requantising cost

const mergeRecord = fileInDir(
  'lonas_merge.json',
  z.object({
    format: z.literal(1),
    source_model: z.string(),
    adapter: z.string(),
    subnet: z.string(),
    /** a GPTQ base written in float (--dequantize) */
    dequantized: z.boolean(),
    requantization: requantization.nullable(),
  }),
  'lonas_merge.json',
);
export const writeMergeRecord = mergeRecord.write;

// ---------------------------------------------------------------------------------------------
// pareto.json / best.json (written by src/nas/search.ts); `front` and `best` entries also carry objectives,
// params, macs, latency_ms, source and index

const searchSummary = {
  score: z.enum(['loss', 'accuracy']),
  direction: z.string(),
  cost: z.enum(['macs', 'params', 'latency']),
  /** what params and macs count (src/nas/cost.ts CostDefinition); missing in files of older searches: run them again */
  cost_definition: z.object({ merged: z.boolean(), seq_len: z.number().int() }),
  ref: z.number(),
  delta: z.number(),
  threshold: z.number(),
};
const pareto = fileInDir(
  'pareto.json',
  z.object({
    ...searchSummary,
    evaluations: z.number().int(),
    best: z.number().int(),
    settings: z.record(z.string(), z.unknown()),
    front: z.array(z.object({ config })),
  }),
  'pareto.json',
);
const best = fileInDir('best.json', z.object({ ...searchSummary, config, satisfied: z.boolean() }), 'best.json');
export const writePareto = pareto.write;
export const writeBest = best.write;

/** The search's front and chosen configuration, or null when `dir` holds no finished search. */
export function readSearchResult(
  dir: string,
): { pareto: NonNullable<ReturnType<typeof pareto.read>>; best: NonNullable<ReturnType<typeof best.read>> } | null {
  const front = pareto.read(dir);
  if (!front) return null;
  const chosen = best.read(dir);
  if (!chosen) throw new Error(`${join(dir, 'best.json')}: missing beside pareto.json (an interrupted search? run it again)`);
  return { pareto: front, best: chosen };
}

// ---------------------------------------------------------------------------------------------
// `lonas eval --out` and `lonas bench --out`

const evalSummary = fileAt(
  z.object({
    mode: z.enum(['generate', 'loglik']),
    tasks: z.array(z.object({ task: z.string(), count: z.number().int(), accuracy: z.number(), ci95: z.tuple([z.number(), z.number()]) })),
  }),
  'evaluation summary (lonas eval --out)',
);
const stat = z.object({ min: z.number(), median: z.number(), max: z.number() });
const benchRecord = fileAt(
  z.object({
    /** params and macs count the model merged (src/nas/cost.ts CostDefinition), as it was timed */
    merged: z.boolean(),
    params: z.object({ total: z.number(), nonZero: z.number() }),
    macs: z.number(),
    /** the model directory alone (full size, no adapter) */
    base: z.object({ params: z.object({ total: z.number(), nonZero: z.number() }), macs: z.number() }),
    prefillMs: stat,
    decodeMsPerToken: stat,
    overheadShare: z.number(),
    /** against --ref-model, from the interleaved runs */
    speedup: z.object({ prefill: stat, decode: stat }).optional(),
    promptLen: z.number().int(),
    genLen: z.number().int(),
    config: config.nullable().optional(),
  }),
  'latency record (lonas bench --out)',
);
export const writeEvalSummary = evalSummary.write;
export const readEvalSummary = evalSummary.read;
export const writeBenchRecord = benchRecord.write;
export const readBenchRecord = benchRecord.read;

// ---------------------------------------------------------------------------------------------
// <run>/stages/<stage>.json: a finished pipeline stage (its presence marks it done)

const stageRecordSchema = z.object({ name: z.string(), seconds: z.number(), outputs: z.array(z.string()), finishedAt: z.string() });
export type StageRecord = z.output<typeof stageRecordSchema>;
const stageRecord = fileAt(stageRecordSchema, 'stage record (delete it to redo the stage)');

export const stageRecordPath = (runDir: string, stage: string) => join(runDir, 'stages', `${stage}.json`);
export const writeStageRecord = (runDir: string, record: StageRecord): void =>
  stageRecord.write(stageRecordPath(runDir, record.name), record);
export const readStageRecord = (runDir: string, stage: string): StageRecord => stageRecord.read(stageRecordPath(runDir, stage));
