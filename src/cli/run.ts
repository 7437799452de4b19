/** `lonas run RECIPE.json`: the whole experiment, stage by stage, resumable; ends with report.html. */
import { Command } from 'commander';
import { join } from 'node:path';
import { loadRecipe } from '../pipeline/recipe.ts';
import { runRecipe } from '../pipeline/runner.ts';
import { buildSummary } from '../pipeline/summary.ts';
import { writeReport } from '../report/html.ts';
import { printRunSummary } from './run-summary.ts';

export function runCommand(): Command {
  return new Command('run')
    .description('run a recipe (finetune → search → extract → eval → bench → report; sparsify/quantize first for shears/sqft)')
    .argument('<recipe>', 'recipe JSON file (see recipes/)')
    .option('--model <dir>', 'override the recipe\'s model')
    .option('--out <dir>', 'override the run directory')
    .option('--from <stage>', 'redo this stage and every later one')
    .action(async (file: string, o: { model?: string; out?: string; from?: string }) => {
      const recipe = loadRecipe(file, o);
      await runRecipe(recipe, {
        from: o.from,
        report: async (r, records) => {
          const summary = buildSummary(r, records);
          await writeReport(summary, r.out);
          printRunSummary(summary, join(r.out, 'report.html'));
        },
      });
    });
}
