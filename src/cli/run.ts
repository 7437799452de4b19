/** `lonas run RECIPE.json`: the whole experiment, stage by stage, resumable; ends with report.html. */
import type { Command } from 'commander';
import { join } from 'node:path';
import { loadRecipe } from '../pipeline/recipe.ts';
import { runRecipe } from '../pipeline/runner.ts';
import { buildSummary } from '../pipeline/summary.ts';
import { writeReport } from '../report/html.ts';
import { printRunSummary } from './run-summary.ts';
import { runSpec } from '../options/run.ts';
import type { RunOptions } from '../options/run.ts';
import { commandFrom } from './command.ts';

export function runCommand(): Command {
  return commandFrom(runSpec, async (o: RunOptions) => {
    const recipe = loadRecipe(o.recipe, o);
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
