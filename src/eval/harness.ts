/**
 * The evaluation harness: runs tasks on an EvalBackend in one of two modes and scores them.
 * - generate: the papers' protocol — Alpaca prompt ending in "### Response:\n", greedy or beam decoding,
 *   max new tokens 32 (commonsense) / 256 (math) unless overridden, then the reference's regex extraction
 *   (extract.ts).
 * - loglik: each option of a choice task is scored as a continuation of the same prompt (choices.ts) and the
 *   most likely one is the prediction (the first on ties). Only choice tasks have options.
 * Examples run in batches of --batch-size grouped by prompt length (longest first: less padding); predictions
 * come back in file order. Batch composition can change float rounding, never the protocol; a run is
 * deterministic for fixed settings. Every number in the result carries the mode that produced it.
 * Returns data; printing is the CLI's job.
 */
import { promptFor } from '../io/prompt.ts';
import type { Example } from '../io/prompt.ts';
import { Rng } from '../tensor/rng.ts';
import type { EvalBackend } from './backend.ts';
import { continuationFor, optionsFor } from './choices.ts';
import type { LoglikTarget } from './choices.ts';
import { scoreGeneration } from './extract.ts';
import type { TaskData } from './tasks.ts';
import { wilson } from './stats.ts';

export type EvalMode = 'generate' | 'loglik';

export interface EvalOptions {
  mode: EvalMode;
  /** generate: beams (1 = greedy, the default; the reference uses 4) */
  beams?: number;
  /** generate: overrides every task's default (32 / 256) */
  maxNewTokens?: number;
  /** loglik: what each option's continuation is (default 'label') */
  loglikTarget?: LoglikTarget;
  /** examples per backend call (default 8), grouped by prompt length; beam search runs one prompt at a time */
  batchSize?: number;
  /** evaluate this many examples per task: the first ones, or a seeded sample with `sample` */
  limit?: number;
  sample?: boolean;
  seed?: number;
}

export interface OptionScore {
  label: string;
  continuation: string;
  logprob: number;
  tokens: number;
  /** what is compared: logprob (label target) or logprob per UTF-8 byte (text target) */
  score: number;
}

export interface Prediction {
  task: string;
  /** index of the example in its file */
  index: number;
  mode: EvalMode;
  prompt: string;
  /** generate: the raw continuation */
  output?: string;
  /** loglik: every option's score */
  options?: OptionScore[];
  extracted: string | null;
  gold: string;
  correct: boolean;
  /** the example did not fit the model's context and counts as wrong */
  skipped?: true;
  /** generate: the context cut the new-token budget of this example */
  clamped?: true;
  note?: string;
}

export interface TaskResult {
  task: string;
  mode: EvalMode;
  file: string;
  count: number;
  correct: number;
  accuracy: number;
  /** 95% Wilson score interval of the accuracy */
  ci95: [number, number];
  /** examples whose output had no extractable answer (generate) */
  noAnswer: number;
  /** examples that did not fit the model's context (counted wrong) */
  skipped: number;
  /** examples whose generation budget was cut by the context length */
  clamped: number;
  maxNewTokens?: number;
  /** wall time (varies between runs; everything else is deterministic) */
  timing: { seconds: number; examplesPerSecond: number };
}

export interface EvalResult {
  mode: EvalMode;
  protocol: Record<string, unknown>;
  tasks: TaskResult[];
  /** unweighted mean of the task accuracies (the papers' "Avg.") */
  average: { accuracy: number; tasks: number; mode: EvalMode };
  predictions: Prediction[];
}

export interface Progress {
  task: string;
  done: number;
  total: number;
  correct: number;
  /** set once per task, before its first batch */
  starting?: boolean;
}

/** The examples to evaluate (with their index in the file): all, the first `limit`, or a seeded sample. */
export function selectExamples(
  task: TaskData,
  opts: Pick<EvalOptions, 'limit' | 'sample' | 'seed'>,
): { index: number; example: Example }[] {
  const all = task.examples.map((example, index) => ({ index, example }));
  if (opts.limit === undefined || opts.limit >= all.length) return all;
  if (!Number.isInteger(opts.limit) || opts.limit < 1) throw new Error(`--limit must be a positive integer, got ${opts.limit}`);
  if (!opts.sample) return all.slice(0, opts.limit);
  const order = new Rng(opts.seed ?? 0).derive(`eval:${task.name}`).shuffle(all.map((_, i) => i));
  return order
    .slice(0, opts.limit)
    .sort((a, b) => a - b)
    .map((i) => all[i]);
}

export async function runEval(
  backend: EvalBackend,
  tasks: TaskData[],
  opts: EvalOptions,
  onProgress?: (p: Progress) => void,
): Promise<EvalResult> {
  const beams = opts.beams ?? 1;
  const batchSize = opts.batchSize ?? 8;
  const target = opts.loglikTarget ?? 'label';
  if (!Number.isInteger(beams) || beams < 1) throw new Error(`--beams must be a positive integer, got ${beams}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`--batch-size must be a positive integer, got ${batchSize}`);
  if (opts.mode === 'loglik') {
    const bad = tasks.filter((t) => t.answer.type !== 'choice');
    if (bad.length) {
      throw new Error(
        `loglik mode scores the options of multiple-choice tasks; ${bad.map((t) => `${t.name} (${t.answer.type} answers)`).join(', ')} ${bad.length > 1 ? 'have' : 'has'} no options: use --mode generate`,
      );
    }
  }
  const results: TaskResult[] = [];
  const predictions: Prediction[] = [];
  for (const task of tasks) {
    const chosen = selectExamples(task, opts);
    const maxNewTokens = opts.maxNewTokens ?? task.maxNewTokens;
    const perCall = opts.mode === 'generate' && beams > 1 ? 1 : batchSize;
    const prompts = chosen.map(({ example }) => promptFor(example, { withResponse: false }));
    // batches of similar length (longest first): less padding; predictions keep the file order
    const order = chosen.map((_, i) => i).sort((a, b) => prompts[b].length - prompts[a].length || a - b);
    const preds: Prediction[] = new Array(chosen.length);
    let done = 0,
      correctSoFar = 0;
    const started = performance.now();
    onProgress?.({ task: task.name, done: 0, total: chosen.length, correct: 0, starting: true });
    for (let i = 0; i < order.length; i += perCall) {
      const idx = order.slice(i, i + perCall);
      const batch = idx.map((j) => ({ ...chosen[j], prompt: prompts[j] }));
      const out =
        opts.mode === 'generate' ? generateBatch(backend, task, batch, { maxNewTokens, beams }) : loglikBatch(backend, task, batch, target);
      idx.forEach((j, k) => {
        preds[j] = out[k];
      });
      done += out.length;
      correctSoFar += out.filter((p) => p.correct).length;
      onProgress?.({ task: task.name, done, total: chosen.length, correct: correctSoFar });
      await new Promise((r) => setImmediate(r)); // let progress output render between batches
    }
    const seconds = (performance.now() - started) / 1000;
    const correct = preds.filter((p) => p.correct).length;
    results.push({
      task: task.name,
      mode: opts.mode,
      file: task.file,
      count: preds.length,
      correct,
      accuracy: preds.length ? correct / preds.length : 0,
      ci95: wilson(correct, preds.length),
      noAnswer: preds.filter((p) => p.extracted === null && !p.skipped).length,
      skipped: preds.filter((p) => p.skipped).length,
      clamped: preds.filter((p) => p.clamped).length,
      ...(opts.mode === 'generate' ? { maxNewTokens } : {}),
      timing: { seconds, examplesPerSecond: seconds > 0 ? preds.length / seconds : 0 },
    });
    predictions.push(...preds);
  }
  const protocol: Record<string, unknown> =
    opts.mode === 'generate'
      ? {
          prompt: 'alpaca (### Response:)',
          decoding: beams > 1 ? `beam search, ${beams} beams` : 'greedy',
          maxNewTokens: opts.maxNewTokens ?? 'per task (32 commonsense, 256 math)',
          extraction: 'LLM-Adapters regex',
        }
      : {
          prompt: 'alpaca (### Response:)',
          loglikTarget: target,
          comparison:
            target === 'label'
              ? 'total log-likelihood of "the correct answer is <label>"'
              : 'log-likelihood per UTF-8 byte of the option text',
        };
  Object.assign(protocol, {
    limit: opts.limit ?? null,
    sample: Boolean(opts.sample && opts.limit !== undefined),
    seed: opts.seed ?? 0,
    batchSize,
  });
  const accs = results.map((r) => r.accuracy);
  return {
    mode: opts.mode,
    protocol,
    tasks: results,
    average: { accuracy: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : 0, tasks: accs.length, mode: opts.mode },
    predictions,
  };
}

interface BatchItem {
  index: number;
  example: Example;
  prompt: string;
}

function generateBatch(
  backend: EvalBackend,
  task: TaskData,
  batch: BatchItem[],
  req: { maxNewTokens: number; beams: number },
): Prediction[] {
  const gens = backend.generate(
    batch.map((b) => b.prompt),
    req,
  );
  return batch.map(({ index, example, prompt }, k) => {
    const gold = example.answer!;
    const g = gens[k];
    const { extracted, correct } = g.skipped ? { extracted: null, correct: false } : scoreGeneration(task.answer, g.text, gold);
    return {
      task: task.name,
      index,
      mode: 'generate',
      prompt,
      output: g.text,
      extracted,
      gold,
      correct,
      ...(g.skipped ? { skipped: true } : {}),
      ...(g.clamped ? { clamped: true } : {}),
      ...(g.note ? { note: g.note } : {}),
    };
  });
}

function loglikBatch(backend: EvalBackend, task: TaskData, batch: BatchItem[], target: LoglikTarget): Prediction[] {
  const labels = task.answer.type === 'choice' ? task.answer.labels : [];
  const options = batch.map(({ example }) => optionsFor(example, labels));
  const conts = options.map((opt, k) => opt.map((o) => continuationFor(o, target, `${task.file}: record ${batch[k].index}`)));
  const scored = backend.score(batch.map(({ prompt }, k) => ({ prompt, continuations: conts[k] })));
  return batch.map(({ index, example, prompt }, k) => {
    const s = scored[k];
    const scores: OptionScore[] = options[k].map((o, j) => ({
      label: o.label,
      continuation: conts[k][j],
      logprob: s.scores[j].logprob,
      tokens: s.scores[j].tokens,
      score: target === 'text' ? s.scores[j].logprob / Math.max(1, Buffer.byteLength(conts[k][j])) : s.scores[j].logprob,
    }));
    let best = -1; // the first of equal scores wins
    if (!s.skipped)
      scores.forEach((o, j) => {
        if (best < 0 || o.score > scores[best].score) best = j;
      });
    const extracted = best >= 0 ? scores[best].label : null;
    return {
      task: task.name,
      index,
      mode: 'loglik',
      prompt,
      options: scores,
      extracted,
      gold: example.answer!,
      correct: extracted === example.answer,
      ...(s.skipped ? { skipped: true } : {}),
      ...(s.note ? { note: s.note } : {}),
    };
  });
}
