/**
 * Recipes: one validated JSON file describing a whole experiment (model, data, method, stage options).
 * Paths inside a recipe are relative to the recipe file; `--model`/`--out` on the command line override.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const finetune = z.object({
  space: z.string().default('lonas'),
  rank: z.number().int().positive().default(32),
  alpha: z.number().positive().default(64),
  dropout: z.number().min(0).max(0.99).default(0.1),
  targets: z.array(z.string()).default(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
  epochs: z.number().int().positive().default(3),
  steps: z.number().int().positive().optional(),
  batchSize: z.number().int().positive().default(4),
  gradAccum: z.number().int().positive().default(4),
  lr: z.number().positive().default(3e-4),
  warmup: z.number().int().nonnegative().default(0),
  cutoffLen: z.number().int().positive().default(256),
  /** loss on prompt and response (the reference's default); false = response only */
  trainOnInputs: z.boolean().default(true),
  /** super-network stages train maximal + minimal + a sampled sub-network per micro-batch (3× the compute per step) */
  sandwich: z.boolean().default(false),
  /** reorder MLP channels by importance before training (off when absent) */
  reorderChannels: z.enum(['magnitude', 'activation']).optional(),
  sparseAdapter: z.boolean().default(false),
  quantizationAware: z.boolean().default(false),
  extraArgs: z.array(z.string()).default([]),
}).strict();

export const recipeSchema = z.object({
  name: z.string().min(1),
  method: z.enum(['lonas', 'shears', 'sqft', 'lora']),
  model: z.string().min(1),
  out: z.string().default('runs/${name}'),
  seed: z.number().int().default(42),
  /** launch prefix for the fine-tuning (and baseline) and search stages, split at spaces, e.g. "mpirun -np 4 --hostfile hosts" */
  mpi: z.string().regex(/^\s*\S/, 'a launch command such as "mpirun -np 2"').optional(),
  data: z.object({
    /** training files, FILE or FILE:N */
    train: z.array(z.string()).min(1),
    /** examples held out of the training mix for validation and search */
    valSize: z.number().int().nonnegative().default(0),
    /** or a separate validation file for the search */
    val: z.string().optional(),
    /** evaluation: task names under dataDir, or explicit test files */
    tasks: z.array(z.string()).default([]),
    dataDir: z.string().optional(),
    testFiles: z.array(z.object({ file: z.string(), answerType: z.enum(['auto', 'choice', 'number', 'letter']).default('auto') }).strict()).default([]),
    /** calibration corpus for sparsify/quantize */
    calib: z.string().optional(),
  }).strict(),
  sparsify: z.object({ method: z.enum(['wanda', 'magnitude']).default('wanda'), sparsity: z.number().gt(0).lt(1).default(0.5), nm: z.string().optional(), nsamples: z.number().int().positive().default(128), seqlen: z.number().int().positive().optional() }).strict().nullable().default(null),
  quantize: z.object({ bits: z.number().int().default(4), groupSize: z.number().int().default(128), actOrder: z.boolean().default(false), lmHead: z.boolean().default(false), nsamples: z.number().int().positive().default(128), seqlen: z.number().int().positive().optional() }).strict().nullable().default(null),
  /** also fine-tune a plain LoRA baseline (same settings, no search space) for comparison */
  baseline: z.boolean().default(false),
  finetune: finetune.default({}),
  search: z.object({
    evals: z.number().int().positive().default(200), population: z.number().int().positive().default(8),
    objective: z.enum(['macs', 'params', 'latency']).default('macs'), mode: z.enum(['loss', 'loglik', 'generate']).default('loss'),
    limit: z.number().int().positive().optional(), delta: z.number().nonnegative().optional(),
  }).strict().nullable().default({}),
  extract: z.object({ merge: z.boolean().default(true) }).strict().default({}),
  eval: z.object({
    mode: z.enum(['generate', 'loglik']).default('generate'), beams: z.number().int().positive().default(1),
    maxNewTokens: z.number().int().positive().optional(), limit: z.number().int().positive().optional(), batchSize: z.number().int().positive().default(8),
  }).strict().default({}),
  bench: z.object({ promptLen: z.number().int().positive().default(128), genLen: z.number().int().positive().default(32), repeats: z.number().int().positive().default(5) }).strict().default({}),
}).strict().superRefine((r, ctx) => {
  if (r.method === 'shears' && !r.sparsify) ctx.addIssue({ code: 'custom', path: ['sparsify'], message: 'shears prunes the base first: give a "sparsify" section' });
  if (r.method === 'sqft' && !r.sparsify && !r.quantize) ctx.addIssue({ code: 'custom', path: ['sparsify'], message: 'sqft needs a sparse and/or quantised base: give "sparsify" and/or "quantize"' });
  if ((r.sparsify || r.quantize) && !r.data.calib && r.sparsify?.method !== 'magnitude') ctx.addIssue({ code: 'custom', path: ['data', 'calib'], message: 'sparsify (wanda) and quantize need a calibration corpus' });
  if (r.data.tasks.length === 0 && r.data.testFiles.length === 0) ctx.addIssue({ code: 'custom', path: ['data', 'tasks'], message: 'name evaluation tasks or testFiles' });
  if (r.finetune.quantizationAware && !r.quantize) ctx.addIssue({ code: 'custom', path: ['finetune', 'quantizationAware'], message: 'needs a "quantize" section (a GPTQ base)' });
  if (r.search && r.data.valSize === 0 && !r.data.val) ctx.addIssue({ code: 'custom', path: ['data', 'valSize'], message: 'the search needs validation examples: set data.valSize > 0 or data.val' });
});

export type Recipe = z.infer<typeof recipeSchema>;

/** Parses and validates a recipe; errors name the file and each bad field. Relative paths resolve against `baseDir`. */
export function parseRecipe(json: unknown, source: string, baseDir: string, overrides: { model?: string; out?: string } = {}): Recipe {
  const r = recipeSchema.safeParse(json);
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `field "${i.path.join('.') || '(root)'}": ${i.message}`);
    throw new Error(`${source}: invalid recipe: ${msgs.join('; ')}`);
  }
  const recipe = r.data;
  const abs = (p: string) => {
    const [file, count] = expandVars(p).split(/:(?=\d+$)/);
    const full = isAbsolute(file) ? file : resolve(baseDir, file);
    return count ? `${full}:${count}` : full;
  };
  recipe.model = overrides.model ? resolve(overrides.model) : abs(recipe.model);
  recipe.data.tasks = recipe.data.tasks.map(expandVars);
  recipe.out = overrides.out ? resolve(overrides.out) : abs(recipe.out.replace('${name}', recipe.name));
  recipe.data.train = recipe.data.train.map(abs);
  if (recipe.data.dataDir) recipe.data.dataDir = abs(recipe.data.dataDir);
  if (recipe.data.calib) recipe.data.calib = abs(recipe.data.calib);
  if (recipe.data.val) recipe.data.val = abs(recipe.data.val);
  recipe.data.testFiles = recipe.data.testFiles.map((t) => ({ ...t, file: abs(t.file) }));
  return recipe;
}

/** `${assets}`: $LONAS_ASSETS, else the shared assets directory beside the repository (../shared/assets). */
export function assetsDir(): string {
  return process.env.LONAS_ASSETS ?? fileURLToPath(new URL('../../../shared/assets', import.meta.url));
}

function expandVars(p: string): string {
  return p.replace(/\$\{assets\}/g, assetsDir());
}

export function loadRecipe(file: string, overrides: { model?: string; out?: string } = {}): Recipe {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the recipe (${(e as Error).message})`);
  }
  return parseRecipe(json, file, dirname(resolve(file)), overrides);
}
