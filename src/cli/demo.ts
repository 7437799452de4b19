/**
 * `lonas demo`: a complete LoNAS experiment with no downloads. lonas generates a small task suite from a
 * seed (arithmetic word problems with numeric answers, two-option reasoning items), pretrains a small Llama
 * on a pretraining split (cached: a second run starts at fine-tuning), then runs the LoNAS recipe with a
 * plain LoRA baseline: fine-tune, search, extract, evaluate on the held-out test split, measure, report.
 * Every number in the report is measured by this run.
 */
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { buildSuite, DEFAULT_SIZES, DEMO_TASKS, QUICK_SIZES } from '../demo/tasks.ts';
import { pretrainBase } from '../demo/pretrain.ts';
import { parseRecipe } from '../pipeline/recipe.ts';
import { runRecipe } from '../pipeline/runner.ts';
import { buildSummary } from '../pipeline/summary.ts';
import { writeReport } from '../report/html.ts';
import { printRunSummary } from './run-summary.ts';
import { demoSpec } from '../options/run.ts';
import type { DemoOptions } from '../options/run.ts';
import { commandFrom } from './command.ts';

/** The demo's recipe: LoNAS (+ LoRA baseline) on the generated suite. Budgets sized for ~10 minutes on 2 cores. */
export function demoRecipe(o: {
  base: string;
  train: string;
  val: string;
  tasksDir: string;
  out: string;
  quick: boolean;
  seed: number;
}): unknown {
  const q = o.quick;
  return {
    name: q ? 'demo-quick' : 'demo',
    method: 'lonas',
    model: o.base,
    out: o.out,
    seed: o.seed,
    data: { train: [o.train], val: o.val, tasks: DEMO_TASKS.map((t) => t.name), dataDir: o.tasksDir },
    baseline: true,
    // loss on the response only: the prompts are templated boilerplate the model would otherwise spend its steps on.
    // The super-network uses the sandwich rule (3 sub-networks per step, so 3× the baseline's compute): with one
    // sampled sub-network per step, 300 steps left its maximal configuration ~18 points below the LoRA baseline.
    finetune: {
      space: 'lonas',
      rank: 16,
      alpha: 32,
      dropout: 0,
      epochs: 1,
      steps: q ? 40 : 300,
      batchSize: 8,
      gradAccum: 1,
      lr: 4e-3,
      warmup: q ? 4 : 10,
      cutoffLen: 160,
      trainOnInputs: false,
      sandwich: true,
    },
    search: { evals: q ? 8 : 40, population: q ? 4 : 8, objective: 'macs', mode: 'loss', limit: q ? 24 : 100 },
    extract: { merge: true },
    eval: {
      mode: 'generate',
      beams: 1,
      limit: q ? 24 : 200,
      batchSize: 16,
      maxNewTokens: Math.max(...DEMO_TASKS.map((t) => t.maxNewTokens)),
    },
    // 7 interleaved runs in both modes: two models of the same speed show a min–max of ratios that leaves out 1
    // with chance 2^(1−7) ≈ 1.6% (3 runs: 25%), so "faster" is rarely said of noise
    bench: { promptLen: 128, genLen: 32, repeats: 7 },
  };
}

export function demoCommand(): Command {
  return commandFrom(demoSpec, async (o: DemoOptions) => {
    const out = resolve(o.out);
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const files = buildSuite(join(out, 'data'), o.seed, o.quick ? QUICK_SIZES : DEFAULT_SIZES);
    log(`lonas demo: task suite in ${files.dir} (train ${files.train}, test ${Object.values(files.test).join(', ')})`);
    let lastPrinted = -1;
    const base = pretrainBase({
      outDir: join(out, o.quick ? 'base-quick' : 'base'),
      seed: o.seed,
      quick: !!o.quick,
      corpus: files.suite.pretrain,
      onProgress: (p) => {
        const pct = Math.floor((20 * p.step) / p.totalSteps);
        if (pct !== lastPrinted) {
          lastPrinted = pct;
          log(`pretrain: step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} ${Math.round(p.tokensPerSecond)} tok/s`);
        }
      },
    });
    log(
      base.cached
        ? `lonas demo: pretrained base reused from ${base.dir} (cached)`
        : `lonas demo: pretrained a ${(base.parameters / 1e6).toFixed(2)}M-parameter Llama in ${base.seconds.toFixed(0)} s (final loss ${base.finalLoss.toFixed(3)})`,
    );
    const recipe = parseRecipe(
      demoRecipe({
        base: base.dir,
        train: files.train,
        val: files.val,
        tasksDir: files.tasksDir,
        out: join(out, 'run'),
        quick: !!o.quick,
        seed: o.seed,
      }),
      'lonas demo',
      out,
    );
    await runRecipe(recipe, {
      from: o.from,
      report: async (r, records) => {
        const summary = buildSummary(r, records);
        summary.notes.push(
          `Base model: a ${(base.parameters / 1e6).toFixed(2)}M-parameter Llama pretrained by this demo on ${base.corpus.documents} generated documents (${base.steps} steps, final loss ${base.finalLoss.toFixed(3)}).`,
        );
        summary.curves.push({ name: 'pretraining', train: base.lossCurve.map(([step, loss]) => ({ step, loss })) });
        await writeReport(summary, r.out);
        printRunSummary(summary, join(r.out, 'report.html'));
      },
    });
  });
}
