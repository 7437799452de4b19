/**
 * The JSON files lonas writes beside models and runs, each with its schema and typed read/write. Every
 * reader and writer of these files goes through here; a malformed file gives an error naming the file and
 * the field ("<path>: field "options.seed": Expected number, received string").
 *
 *   <adapter>/run_config.json           what `lonas finetune` ran with (read back by `lonas search`)
 *   <adapter>/mlp_channel_order.json   the MLP channel order `finetune --reorder-channels` chose (for --resume)
 *   <adapter>/lonas_adapter.json        lonas's extras beside a PEFT adapter: search space, mode, channel order
 *   <model>/lonas_compression.json      how `lonas sparsify` / `lonas quantize` made a model
 *   <model>/lonas_extract.json          provenance and sizes of an extracted sub-network
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

const config = z.record(z.string(), z.number());

// ---------------------------------------------------------------------------------------------
// run_config.json

export const RUN_CONFIG = 'run_config.json';

/** `options` holds every finetune option; these are the ones read back (the validation split and tokenisation). */
const runConfigSchema = z.object({
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
  result: z.object({ steps: z.number().int(), finalLoss: z.number(), valLoss: z.number().nullable(), tokensSeen: z.number(), seconds: z.number() }),
  node: z.string(),
});
export type RunConfig = z.output<typeof runConfigSchema>;

export function writeRunConfig(dir: string, record: z.input<typeof runConfigSchema>): void {
  writeJsonAtomic(join(dir, RUN_CONFIG), record);
}

/** The adapter's run_config.json, or null when it has none (an adapter not trained by lonas). */
export function readRunConfig(dir: string): RunConfig | null {
  const path = join(dir, RUN_CONFIG);
  return existsSync(path) ? readArtifact(path, runConfigSchema, 'run_config.json (written by lonas finetune; pass --val FILE otherwise)') : null;
}

// ---------------------------------------------------------------------------------------------
// lonas_adapter.json

export const LONAS_ADAPTER = 'lonas_adapter.json';

/** `search_space` is validated by src/nas/search-space.ts and `mlp_channel_order` by src/nas/channel-order.ts where they are used. */
const lonasAdapterSchema = z.object({
  format: z.literal(1).default(1),
  search_space: z.object({ groups: z.array(z.unknown()) }).optional(),
  mode: z.enum(['lora', 'sparse', 'qa']).default('lora'),
  mlp_channel_order: z.unknown().optional(),
});
export type LonasAdapterInfo = z.output<typeof lonasAdapterSchema>;

export function writeLonasAdapter(dir: string, info: z.input<typeof lonasAdapterSchema>): void {
  writeJsonAtomic(join(dir, LONAS_ADAPTER), info);
}

/** lonas_adapter.json of an adapter directory; a PEFT adapter without one reads as a plain LoRA adapter. */
export function readLonasAdapter(dir: string): LonasAdapterInfo {
  const path = join(dir, LONAS_ADAPTER);
  return lonasAdapterSchema.parse(existsSync(path) ? readArtifact(path, lonasAdapterSchema, 'lonas_adapter.json') : {});
}

// ---------------------------------------------------------------------------------------------
// mlp_channel_order.json: the order `finetune --reorder-channels` chose, reused by --resume

export const CHANNEL_ORDER_FILE = 'mlp_channel_order.json';

/** `mlp_channel_order` is validated against the model by src/nas/channel-order.ts */
const channelOrderSchema = z.object({ mode: z.enum(['magnitude', 'activation']), mlp_channel_order: z.array(z.array(z.number().int())) });
export type ChannelOrderRecord = z.output<typeof channelOrderSchema>;

export function writeChannelOrder(dir: string, record: ChannelOrderRecord): void {
  writeJsonAtomic(join(dir, CHANNEL_ORDER_FILE), record);
}

/** The recorded order, or null when `dir` has none. */
export function readChannelOrder(dir: string): ChannelOrderRecord | null {
  const path = join(dir, CHANNEL_ORDER_FILE);
  return existsSync(path) ? readArtifact(path, channelOrderSchema, `${CHANNEL_ORDER_FILE} (delete it, or run without --resume)`) : null;
}

// ---------------------------------------------------------------------------------------------
// lonas_compression.json

export const LONAS_COMPRESSION = 'lonas_compression.json';

const pruneRecord = z.object({
  method: z.enum(['wanda', 'magnitude']), sparsity: z.number(), nm: z.string().nullable(), nsamples: z.number().int(),
  seqlen: z.number().int().nullable(), calib: z.string().nullable(), seed: z.number().int(), achieved_sparsity: z.number(), modules: z.unknown(),
});
const gptqRecord = z.object({
  method: z.literal('gptq'), bits: z.number().int(), group_size: z.number().int(), act_order: z.boolean(), damp: z.number(), nsamples: z.number().int(),
  seqlen: z.number().int(), calib: z.string(), seed: z.number().int(), source: z.string(), lm_head: z.boolean().default(false),
});
const compressionSchema = z.discriminatedUnion('method', [pruneRecord, gptqRecord]);
export type CompressionRecord = z.output<typeof compressionSchema>;

export function writeCompression(dir: string, record: z.input<typeof compressionSchema>): void {
  writeJsonAtomic(join(dir, LONAS_COMPRESSION), record);
}

/** How a model directory was compressed by lonas, or null for a model lonas did not compress. */
export function readCompression(dir: string): CompressionRecord | null {
  const path = join(dir, LONAS_COMPRESSION);
  return existsSync(path) ? readArtifact(path, compressionSchema, 'lonas_compression.json') : null;
}

// ---------------------------------------------------------------------------------------------
// lonas_extract.json

export const LONAS_EXTRACT = 'lonas_extract.json';

const extractSchema = z.object({
  format: z.literal(1), source_model: z.string(), adapter: z.string(), subnet: z.string(), config: config.nullable(),
  merged: z.boolean(), dtype: z.enum(['f32', 'bf16']), adapter_dir: z.string().nullable(),
  params: z.object({ base: z.number(), extracted: z.number(), extracted_adapter: z.number() }),
  macs_1x256: z.object({ base: z.number(), extracted: z.number() }),
});
export type ExtractRecord = z.output<typeof extractSchema>;

export function writeExtractRecord(dir: string, record: z.input<typeof extractSchema>): void {
  writeJsonAtomic(join(dir, LONAS_EXTRACT), record);
}

export function readExtractRecord(dir: string): ExtractRecord {
  return readArtifact(join(dir, LONAS_EXTRACT), extractSchema, 'lonas_extract.json');
}

// ---------------------------------------------------------------------------------------------
// pareto.json / best.json (written by src/nas/search.ts)

const searchSummary = {
  score: z.enum(['loss', 'accuracy']), direction: z.string(), cost: z.enum(['macs', 'params', 'latency']),
  ref: z.number(), delta: z.number(), threshold: z.number(),
};
/** `front` and `best` entries carry config, objectives, params, macs, latency_ms, source, index (src/nas/search.ts) */
const paretoSchema = z.object({
  ...searchSummary, evaluations: z.number().int(), best: z.number().int(), settings: z.record(z.string(), z.unknown()), front: z.array(z.object({ config })),
});
const bestSchema = z.object({ ...searchSummary, config, satisfied: z.boolean() });
export type ParetoFile = z.output<typeof paretoSchema>;
export type BestFile = z.output<typeof bestSchema>;

export function writePareto(dir: string, value: z.input<typeof paretoSchema>): void {
  writeJsonAtomic(join(dir, 'pareto.json'), value);
}

export function writeBest(dir: string, value: z.input<typeof bestSchema>): void {
  writeJsonAtomic(join(dir, 'best.json'), value);
}

/** The search's front and chosen configuration, or null when `dir` holds no finished search. */
export function readSearchResult(dir: string): { pareto: ParetoFile; best: BestFile } | null {
  if (!existsSync(join(dir, 'pareto.json'))) return null;
  return { pareto: readArtifact(join(dir, 'pareto.json'), paretoSchema, 'pareto.json'), best: readArtifact(join(dir, 'best.json'), bestSchema, 'best.json') };
}

// ---------------------------------------------------------------------------------------------
// `lonas eval --out` and `lonas bench --out`

const evalSummarySchema = z.object({
  mode: z.enum(['generate', 'loglik']),
  tasks: z.array(z.object({ task: z.string(), count: z.number().int(), accuracy: z.number(), ci95: z.tuple([z.number(), z.number()]) })),
});
const stat = z.object({ median: z.number() });
const benchRecordSchema = z.object({
  params: z.object({ total: z.number(), nonZero: z.number() }), macs: z.number(), prefillMs: stat, decodeMsPerToken: stat,
  promptLen: z.number().int(), genLen: z.number().int(), config: config.nullable().optional(),
});
export type EvalSummary = z.output<typeof evalSummarySchema>;
export type BenchRecord = z.output<typeof benchRecordSchema>;

export function writeEvalSummary(path: string, value: z.input<typeof evalSummarySchema>): void {
  writeJsonAtomic(path, value);
}

export function readEvalSummary(path: string): EvalSummary {
  return readArtifact(path, evalSummarySchema, 'evaluation summary (lonas eval --out)');
}

export function writeBenchRecord(path: string, value: z.input<typeof benchRecordSchema>): void {
  writeJsonAtomic(path, value);
}

export function readBenchRecord(path: string): BenchRecord {
  return readArtifact(path, benchRecordSchema, 'latency record (lonas bench --out)');
}

// ---------------------------------------------------------------------------------------------
// <run>/stages/<stage>.json

const stageRecordSchema = z.object({ name: z.string(), seconds: z.number(), outputs: z.array(z.string()), finishedAt: z.string() });
export type StageRecord = z.output<typeof stageRecordSchema>;

export const stageRecordPath = (runDir: string, stage: string) => join(runDir, 'stages', `${stage}.json`);

export function writeStageRecord(runDir: string, record: StageRecord): void {
  writeJsonAtomic(stageRecordPath(runDir, record.name), record);
}

export function readStageRecord(runDir: string, stage: string): StageRecord {
  return readArtifact(stageRecordPath(runDir, stage), stageRecordSchema, 'stage record (delete it to redo the stage)');
}
