/**
 * `lonas eval`: accuracy on the commonsense / math benchmarks (LLM-Adapters format) in generation or
 * log-likelihood mode. Progress (with ETA) on stderr, the table on stdout; --out writes the summary JSON and
 * --predictions one JSON line per example.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { resolve } from 'node:path';
import { loadWithAdapter } from '../nas/load.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { writeFileAtomic } from '../io/files.ts';
import { writeEvalSummary } from '../io/artifacts.ts';
import { modelBackend } from '../eval/backend.ts';
import { runEval, selectExamples } from '../eval/harness.ts';
import type { EvalMode, EvalResult, Progress } from '../eval/harness.ts';
import { loadDataFile, loadTasks } from '../eval/tasks.ts';
import type { TaskData } from '../eval/tasks.ts';
import { evalSpec } from '../options/eval.ts';
import type { EvalOptions } from '../options/eval.ts';
import { commandFrom } from './command.ts';
import { setGemmCompute } from '../kernels/compute-mode.ts';

type EvalCliOptions = EvalOptions;

export function evalCommand(): Command {
  return commandFrom(evalSpec, (o: EvalCliOptions) => runEvalCommand(o));
}

async function runEvalCommand(o: EvalCliOptions): Promise<void> {
  if (Boolean(o.tasks) === Boolean(o.data)) throw new Error('give either --tasks LIST or --data FILE (one of them)');
  if (o.sample && o.limit === undefined) throw new Error('--sample needs --limit N (the sample size)');
  if (o.mode === 'loglik' && (o.beams !== 1 || o.maxNewTokens !== undefined))
    throw new Error('--beams and --max-new-tokens apply to --mode generate only');
  if (o.answerType !== 'auto' && !o.data)
    throw new Error('--answer-type applies to --data FILE (tasks named with --tasks have a known format)');
  const tasks: TaskData[] = o.data
    ? [loadDataFile(o.data, o.answerType)]
    : loadTasks(
        o
          .tasks!.split(',')
          .map((s) => s.trim())
          .filter(Boolean),
        o.dataDir,
      );
  const computeNote = setGemmCompute(o.compute);
  if (computeNote) process.stderr.write(`${computeNote}\n`);
  const { model, supernet } = loadWithAdapter(o.model, o.adapter, o.subnet);
  const tok = loadTokenizer(o.model);
  const opts = {
    mode: o.mode,
    beams: o.beams,
    maxNewTokens: o.maxNewTokens,
    loglikTarget: o.loglikTarget,
    batchSize: o.batchSize,
    limit: o.limit,
    sample: o.sample,
    seed: o.seed,
  };
  const total = tasks.reduce((n, t) => n + selectExamples(t, opts).length, 0);
  const progress = new EvalProgress(total, o.mode);
  let result: EvalResult;
  try {
    result = await runEval(modelBackend(model, tok), tasks, opts, (p) => progress.update(p));
  } finally {
    progress.stop();
  }
  const summary = {
    mode: result.mode,
    model: {
      dir: resolve(o.model),
      adapter: o.adapter ? resolve(o.adapter) : null,
      subnet: supernet ? (o.subnet ?? 'maximal') : null,
      subnetConfig: supernet?.config ?? null,
    },
    protocol: result.protocol,
    tasks: result.tasks,
    average: result.average,
  };
  if (o.out) writeEvalSummary(o.out, summary);
  if (o.predictions)
    writeFileAtomic(o.predictions, result.predictions.map((p) => JSON.stringify(p)).join('\n') + (result.predictions.length ? '\n' : ''));
  process.stdout.write(o.json ? `${JSON.stringify(summary, null, 2)}\n` : formatTable(result));
}

/** The results table: one row per task and the average, each saying which mode produced it. */
export function formatTable(r: EvalResult): string {
  const pct = (x: number) => (100 * x).toFixed(1);
  const rows = r.tasks.map((t) => [
    t.task,
    t.mode,
    `${pct(t.accuracy)}`,
    `${t.correct}/${t.count}`,
    `${pct(t.ci95[0])}–${pct(t.ci95[1])}`,
    [t.noAnswer ? `${t.noAnswer} no answer` : '', t.skipped ? `${t.skipped} too long` : '', t.clamped ? `${t.clamped} budget cut` : '']
      .filter(Boolean)
      .join(', '),
  ]);
  rows.push([`average (${r.average.tasks} task${r.average.tasks === 1 ? '' : 's'})`, r.average.mode, pct(r.average.accuracy), '', '', '']);
  const head = ['task', 'mode', 'acc %', 'correct', '95% CI', 'notes'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) =>
    cells
      .map((s, c) => (c === 2 ? s.padStart(widths[c]) : s.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return `${[
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.slice(0, -1).map(line),
    line(widths.map((w) => '-'.repeat(w))),
    line(rows[rows.length - 1]),
  ].join('\n')}\n`;
}

/** A bar over every example of every task with the ETA (TTY), else a line per ~5% of each task. */
class EvalProgress {
  private bar: cliProgress.SingleBar | null = null;
  private before = 0; // examples of the tasks already finished
  private lastPct = -1;
  private readonly started = performance.now();

  constructor(
    private readonly total: number,
    private readonly mode: EvalMode,
  ) {
    if (process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `eval (${mode}) {bar} {value}/{total} examples | {task} acc {acc} | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { task: '-', acc: '-' });
    }
  }

  update(p: Progress): void {
    if (p.starting) {
      this.lastPct = -1;
      if (!this.bar) process.stderr.write(`eval (${this.mode}): ${p.task}: ${p.total} examples\n`);
      return;
    }
    const acc = `${((100 * p.correct) / p.done).toFixed(1)}%`;
    const done = this.before + p.done;
    if (this.bar) this.bar.update(done, { task: p.task, acc });
    else {
      const pct = Math.floor((20 * p.done) / p.total);
      if (pct !== this.lastPct) {
        this.lastPct = pct;
        const elapsed = (performance.now() - this.started) / 1000;
        const eta = Math.round((elapsed / done) * (this.total - done));
        process.stderr.write(`eval (${this.mode}): ${p.task} ${p.done}/${p.total} acc ${acc} | all ${done}/${this.total} ETA ${eta}s\n`);
      }
    }
    if (p.done === p.total) this.before += p.total;
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
