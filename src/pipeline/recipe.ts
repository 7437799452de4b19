/**
 * Recipes: one validated JSON file describing a whole experiment (model, data, method, stage options).
 * Paths inside a recipe are relative to the recipe file, except `out`: like `--out`, a relative run directory is
 * relative to the working directory (so a shipped recipe never writes into the package). `--model`/`--out` on the
 * command line override.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { fieldErrors } from '../io/artifacts.ts';
import { readJsonFile } from '../io/files.ts';
import { finetuneSpec } from '../options/finetune.ts';
import { quantizeSpec, sparsifySpec } from '../options/compress.ts';
import { benchSpec, evalSpec } from '../options/eval.ts';
import { extractSpec, searchSpec } from '../options/search.ts';
import { fromArgv, int, recipeSection } from '../options/schema.ts';

/**
 * The stage sections are the commands' own option schemas (src/options/) minus what the pipeline fills in
 * (paths, the recipe's seed, the validation split), so every default is written once, in the schema.
 */
const finetune = recipeSection(finetuneSpec, ['model', 'data', 'out', 'valSize', 'seed', 'resume', 'overwrite'])
  .extend({
    /** older recipes' way to pass other finetune flags; parsed with the finetune flags into the fields above by parseRecipe */
    extraArgs: z.array(z.string()).optional(),
  })
  .strict();
const fromRecipeData = ['model', 'calib', 'seed', 'out'] as const;
// the search's cost definition is the run's (stages.ts): merged as extract.merge, MACs for 1×bench.promptLen
const search = recipeSection(searchSpec, ['model', 'adapter', 'out', 'val', 'valSize', 'data', 'seed', 'costSeqLen', 'merged']);
const evalSection = recipeSection(evalSpec, [
  'model',
  'adapter',
  'subnet',
  'tasks',
  'data',
  'answerType',
  'dataDir',
  'out',
  'predictions',
  'json',
  'seed',
]);
// two defaults differ from the commands' on purpose (and as recipes always had them): a pipeline ships its
// sub-network merged, and times 128-token prompts
const extract = recipeSection(extractSpec, ['model', 'adapter', 'subnet', 'out'])
  .extend({ merge: z.boolean().default(true) })
  .strict();
const bench = recipeSection(benchSpec, ['model', 'adapter', 'subnet', 'json', 'out', 'merged', 'refModel', 'refAdapter', 'refSubnet'])
  .extend({ promptLen: int(1).default(128) })
  .strict();

export const recipeSchema = z
  .object({
    name: z.string().min(1),
    method: z.enum(['lonas', 'shears', 'sqft', 'lora']),
    model: z.string().min(1),
    out: z.string().default('runs/${name}'),
    seed: z.number().int().default(42),
    /** launch prefix for the fine-tuning (and baseline) and search stages, split at spaces, e.g. "mpirun -np 4 --hostfile hosts" */
    mpi: z
      .string()
      .regex(/^\s*\S/, 'a launch command such as "mpirun -np 2"')
      .optional(),
    data: z
      .object({
        /** training files, FILE or FILE:N */
        train: z.array(z.string()).min(1),
        /** examples held out of the training mix for validation and search */
        valSize: z.number().int().nonnegative().default(0),
        /** or a separate validation file for the search */
        val: z.string().optional(),
        /** evaluation: task names under dataDir, or explicit test files */
        tasks: z.array(z.string()).default([]),
        dataDir: z.string().optional(),
        testFiles: z
          .array(z.object({ file: z.string(), answerType: z.enum(['auto', 'choice', 'number', 'letter']).default('auto') }).strict())
          .default([]),
        /** calibration corpus for sparsify/quantize */
        calib: z.string().optional(),
      })
      .strict(),
    sparsify: recipeSection(sparsifySpec, fromRecipeData).nullable().default(null),
    quantize: recipeSection(quantizeSpec, fromRecipeData).nullable().default(null),
    /** also fine-tune a plain LoRA baseline (same settings, no search space) for comparison */
    baseline: z.boolean().default(false),
    finetune: finetune.default({}),
    search: search.nullable().default({}),
    extract: extract.default({}),
    eval: evalSection.default({}),
    bench: bench.default({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.method === 'shears' && !r.sparsify)
      ctx.addIssue({ code: 'custom', path: ['sparsify'], message: 'shears prunes the base first: give a "sparsify" section' });
    if (r.method === 'sqft' && !r.sparsify && !r.quantize)
      ctx.addIssue({
        code: 'custom',
        path: ['sparsify'],
        message: 'sqft needs a sparse and/or quantised base: give "sparsify" and/or "quantize"',
      });
    if ((r.sparsify || r.quantize) && !r.data.calib && r.sparsify?.method !== 'magnitude')
      ctx.addIssue({ code: 'custom', path: ['data', 'calib'], message: 'sparsify (wanda) and quantize need a calibration corpus' });
    if (r.data.tasks.length === 0 && r.data.testFiles.length === 0)
      ctx.addIssue({ code: 'custom', path: ['data', 'tasks'], message: 'name evaluation tasks or testFiles' });
    if (r.finetune.quantizationAware && !r.quantize)
      ctx.addIssue({ code: 'custom', path: ['finetune', 'quantizationAware'], message: 'needs a "quantize" section (a GPTQ base)' });
    if (r.search && r.data.valSize === 0 && !r.data.val)
      ctx.addIssue({
        code: 'custom',
        path: ['data', 'valSize'],
        message: 'the search needs validation examples: set data.valSize > 0 or data.val',
      });
  });

export type Recipe = z.infer<typeof recipeSchema>;

/**
 * Parses and validates a recipe; errors name the file and each bad field. Relative paths resolve against
 * `baseDir`, the run directory `out` against the working directory.
 */
/** What `lonas run` flags replace in a recipe (the model, the run directory, the MPI launch prefix). */
export interface RecipeOverrides {
  model?: string;
  out?: string;
  mpi?: string;
}

export function parseRecipe(json: unknown, source: string, baseDir: string, overrides: RecipeOverrides = {}): Recipe {
  const r = recipeSchema.safeParse(json);
  if (!r.success) throw new Error(`${source}: invalid recipe: ${fieldErrors(r.error)}`);
  const recipe = r.data;
  if (recipe.finetune.extraArgs) {
    const { extraArgs, ...typed } = recipe.finetune;
    const given = fromArgv(finetuneSpec, extraArgs, `${source}: field "finetune.extraArgs"`);
    const filled = Object.keys(given).filter((k) => !(k in finetune.shape));
    if (filled.length)
      throw new Error(
        `${source}: field "finetune.extraArgs": ${filled.join(', ')} ${filled.length > 1 ? 'are' : 'is'} set by the pipeline, not the recipe`,
      );
    recipe.finetune = { ...typed, ...given };
  }
  const abs = (p: string) => {
    const [file, count] = expandVars(p).split(/:(?=\d+$)/);
    const full = isAbsolute(file) ? file : resolve(baseDir, file);
    return count ? `${full}:${count}` : full;
  };
  recipe.model = overrides.model ? resolve(overrides.model) : abs(recipe.model);
  if (overrides.mpi !== undefined) recipe.mpi = overrides.mpi;
  recipe.data.tasks = recipe.data.tasks.map(expandVars);
  recipe.out = resolve(overrides.out ?? expandVars(recipe.out.replace('${name}', recipe.name)));
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

export function loadRecipe(file: string, overrides: RecipeOverrides = {}): Recipe {
  return parseRecipe(readJsonFile(file, 'the recipe'), file, dirname(resolve(file)), overrides);
}
