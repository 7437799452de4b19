/**
 * `lonas search`: find the accuracy/cost Pareto front of an elastic adapter's sub-networks (cheap candidates,
 * then NSGA-II), and choose the fewest-cost one within `--delta` of the reference. See src/nas/search.ts.
 */
import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { loadWithAdapter, useSparseKernels } from '../nas/load.ts';
import { extractMerged } from '../nas/extract.ts';
import { ADAPTER_WEIGHTS, loraModules } from '../adapters/peft.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { loadTrainingMix, makeBatches, parseDataSpecs, readExamples, splitValidation, tokenizeExample } from '../io/datasets.ts';
import type { Example } from '../io/datasets.ts';
import { TRAIN_LOG, validationLoss } from '../train/trainer.ts';
import { readRunConfig } from '../io/artifacts.ts';
import { human } from '../report/format.ts';
import { applySubnet } from '../nas/subnet.ts';
import type { SubnetConfig } from '../nas/subnet.ts';
import { countMacs, countParams, measureLatency } from '../nas/cost.ts';
import { allCandidates, namedCandidates } from '../nas/candidates.ts';
import { EVALUATIONS_FILE, runSearch } from '../nas/search.ts';
import type { CostRecord, Score, SearchProgress } from '../nas/search.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import type { SearchSpace } from '../nas/search-space.ts';
import { modelBackend } from '../eval/backend.ts';
import { runEval } from '../eval/harness.ts';
import { LABEL_SETS, loadDataFile } from '../eval/tasks.ts';
import type { TaskData } from '../eval/tasks.ts';
import { parseGoldNumber } from '../eval/extract.ts';
import type { AnswerSpec } from '../eval/extract.ts';
import { searchSpec } from '../options/search.ts';
import type { SearchOptions } from '../options/search.ts';
import { commandFrom } from './command.ts';

type SearchCliOptions = SearchOptions;

/** The `options` that `lonas finetune` saved in the adapter's run_config.json (only what the split needs). */
interface RunOptions { data: string; seed: number; valSize: number; cutoffLen: number; trainOnInputs: boolean }

export function searchCommand(): Command {
  return commandFrom(searchSpec, (o: SearchCliOptions) => runSearchCli(o));
}

function readRunOptions(adapterDir: string): RunOptions | null {
  return readRunConfig(adapterDir)?.options ?? null;
}

/** The validation examples and how they were chosen (a warning when they were seen in training). */
export function validationExamples(o: Pick<SearchCliOptions, 'adapter' | 'val' | 'valSize' | 'data' | 'limit'>, run: RunOptions | null): { examples: Example[]; source: string; warning?: string } {
  if ((o.val === undefined) === (o.valSize === undefined)) throw new Error('give exactly one of --val FILE or --val-size N');
  let examples: Example[], source: string, warning: string | undefined;
  if (o.val !== undefined) {
    examples = readExamples(o.val);
    source = `--val ${o.val}`;
  } else {
    const n = o.valSize!;
    if (run && !o.data) {
      const missing = parseDataSpecs(run.data).map((s) => s.file).filter((f) => !existsSync(f));
      if (missing.length) throw new Error(`the adapter's training data ${missing.join(', ')} (from run_config.json) is not found from ${process.cwd()}; run from the directory finetune ran in, or pass --data or --val`);
      const mix = loadTrainingMix(parseDataSpecs(run.data), run.seed);
      if (run.valSize >= n) {
        examples = splitValidation(mix, run.valSize, run.seed).val.slice(0, n);
        source = `the first ${n} of the adapter's ${run.valSize} held-out training examples`;
      } else if (run.valSize > 0) {
        throw new Error(`--val-size ${n} exceeds the ${run.valSize} examples the adapter held out in training (finetune --val-size); use --val-size ≤ ${run.valSize} or --val FILE`);
      } else {
        examples = splitValidation(mix, n, run.seed).val;
        source = `${n} examples of the training data`;
        warning = 'the adapter was fine-tuned on all of its data (finetune --val-size 0), so these validation examples were seen in training; pass --val FILE for an unbiased score';
      }
    } else {
      if (!o.data) throw new Error(`${join(o.adapter, 'run_config.json')} not found: pass --data FILES to hold --val-size examples out of, or --val FILE`);
      const seed = run?.seed ?? 42;
      examples = splitValidation(loadTrainingMix(parseDataSpecs(o.data), seed), n, seed).val;
      source = `${n} examples held out of --data ${o.data} (seed ${seed})`;
    }
  }
  if (o.limit !== undefined && examples.length > o.limit) {
    examples = examples.slice(0, o.limit);
    source += ` (first ${o.limit})`;
  }
  if (examples.length === 0) throw new Error('no validation examples');
  return { examples, source, warning };
}

/** What a score depends on beyond the validation tokens: the model (config + weight sizes) and the adapter weights. */
function modelFingerprint(modelDir: string, adapterDir: string): string {
  const h = createHash('sha256');
  h.update(resolve(modelDir));
  h.update(readFileSync(join(modelDir, 'config.json')));
  for (const f of readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).sort()) h.update(`${f}:${statSync(join(modelDir, f)).size}`);
  h.update(readFileSync(join(adapterDir, ADAPTER_WEIGHTS)));
  return h.digest('hex');
}

function lossScore(model: LlamaModel, space: SearchSpace, o: SearchCliOptions, examples: Example[], run: RunOptions | null, fingerprint: string): Score {
  const tok = loadTokenizer(o.model);
  const cutoffLen = o.cutoffLen ?? run?.cutoffLen ?? 256;
  const trainOnInputs = run?.trainOnInputs ?? true;
  const tokens = examples.map((e) => tokenizeExample(tok, e, { cutoffLen, trainOnInputs }));
  const batches = makeBatches(tokens, o.batchSize, { padId: tok.padId ?? 0, seed: 0, shuffle: false });
  if (batches.every((b) => b.lossTokens === 0)) throw new Error('the validation examples have no target tokens (prompts longer than --cutoff-len?)');
  const loras = loraModules(model);
  const key = createHash('sha256').update(JSON.stringify({ mode: 'loss', fingerprint, tokens })).digest('hex');
  return { name: 'loss', key, evaluate: (config: SubnetConfig) => validationLoss(model, loras, space, config, batches) };
}

/**
 * The validation examples as evaluation tasks: a --val file is one task (answer type inferred by src/eval);
 * examples drawn from a training mix are grouped by answer format (one task per choice-label family, numbers,
 * letters). The score is the accuracy over all examples (not the mean over groups).
 */
function validationTasks(o: SearchCliOptions, examples: Example[]): TaskData[] {
  if (o.val !== undefined) {
    const task = loadDataFile(o.val);
    return [{ ...task, examples: task.examples.slice(0, examples.length) }]; // examples = the file's first (--limit) ones
  }
  const groups = new Map<string, TaskData>();
  examples.forEach((e, i) => {
    if (e.answer === undefined) throw new Error(`validation example ${i} has no "answer" field; --mode loglik/generate needs gold answers (use --mode loss)`);
    const family = Object.keys(LABEL_SETS).find((f) => LABEL_SETS[f].includes(e.answer!));
    const answer: AnswerSpec | null = family ? { type: 'choice', labels: LABEL_SETS[family] }
      : parseGoldNumber(e.answer) !== null ? { type: 'number' } : /^[A-E]$/.test(e.answer) ? { type: 'letter' } : null;
    if (!answer) throw new Error(`validation example ${i}: cannot tell how to score the gold answer ${JSON.stringify(e.answer)} (not a choice label, a number or a letter A-E)`);
    const name = `validation:${family ?? answer.type}`;
    if (!groups.has(name)) groups.set(name, { name, file: 'validation split', answer, maxNewTokens: answer.type === 'choice' ? 32 : 256, examples: [] });
    groups.get(name)!.examples.push(e);
  });
  return [...groups.values()];
}

/** Accuracy through the evaluation harness (src/eval) with the configuration active. */
function accuracyScore(model: LlamaModel, space: SearchSpace, o: SearchCliOptions, mode: 'loglik' | 'generate', examples: Example[], fingerprint: string): Score {
  const tasks = validationTasks(o, examples);
  if (mode === 'loglik') {
    const bad = tasks.filter((t) => t.answer.type !== 'choice');
    if (bad.length) throw new Error(`--mode loglik scores multiple-choice options; the validation data has ${bad.map((t) => t.answer.type).join(', ')} answers: use --mode generate`);
  }
  const backend = modelBackend(model, loadTokenizer(o.model));
  const opts = { mode, batchSize: o.batchSize } as const;
  const key = createHash('sha256').update(JSON.stringify({ mode, fingerprint, tasks: tasks.map((t) => [t.name, t.answer, t.maxNewTokens, t.examples]) })).digest('hex');
  return {
    name: 'accuracy', key,
    evaluate: async (config: SubnetConfig) => {
      applySubnet(model, space, config);
      const r = await runEval(backend, tasks, opts);
      const n = r.tasks.reduce((a, t) => a + t.count, 0);
      return n ? r.tasks.reduce((a, t) => a + t.correct, 0) / n : 0;
    },
  };
}

/** A progress bar on a terminal; otherwise one line per ~5 %. */
class SearchBar {
  private bar: cliProgress.SingleBar | null = null;
  private lastPct = -1;

  constructor(private readonly scoreName: string) {}

  update(p: SearchProgress): void {
    const payload = { front: p.front, best: p.bestScore.toFixed(4), src: p.last.cached ? 'cached' : p.last.source };
    if (process.stderr.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar({
          format: `search {bar} {value}/{total} evals | front {front} | best ${this.scoreName} {best} | {src} | ETA {eta_formatted}`,
          stream: process.stderr, hideCursor: true, etaBuffer: 20,
        }, cliProgress.Presets.shades_classic);
        this.bar.start(p.total, 0, payload);
      }
      this.bar.update(p.done, payload);
      return;
    }
    const pct = Math.floor((20 * p.done) / p.total);
    if (pct !== this.lastPct || p.done === p.total) {
      this.lastPct = pct;
      process.stderr.write(`search: ${p.done}/${p.total} evals, front ${p.front}, best ${this.scoreName} ${payload.best}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

async function runSearchCli(o: SearchCliOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const { model, space } = loadWithAdapter(o.model, o.adapter);
  if (!space || space.groups.length === 0) throw new Error(`${o.adapter}: the adapter has no search space (fine-tuned with --space none); there is nothing to search`);
  const run = readRunOptions(o.adapter);
  const { examples, source, warning } = validationExamples(o, run);
  if (warning) log(`lonas search: WARNING ${warning}`);
  const fingerprint = modelFingerprint(o.model, o.adapter);
  const score = o.mode === 'loss' ? lossScore(model, space, o, examples, run, fingerprint) : accuracyScore(model, space, o, o.mode, examples, fingerprint);
  const delta = o.delta ?? (score.name === 'loss' ? 0.05 : 0.01);

  const latencyOpts = { promptLen: Math.min(o.latencyPromptLen, model.config.maxPositions - o.latencyGenLen), genLen: o.latencyGenLen, repeats: o.latencyRepeats, warmup: 1 };
  if (o.objective === 'latency' && latencyOpts.promptLen < 1) throw new Error(`--latency-gen-len ${o.latencyGenLen} leaves no room for a prompt in ${model.config.maxPositions} positions`);
  let warm = false;
  const cost = (config: SubnetConfig, withLatency: boolean): CostRecord => {
    applySubnet(model, space, config);
    const c: CostRecord = { params: countParams(model).total, macs: countMacs(model, 256) };
    if (withLatency) {
      // timed on what a user ships: the configuration extracted and merged (no adapter matmuls, no strided views)
      const shipped = extractMerged(model);
      useSparseKernels(shipped);
      if (!warm) { measureLatency(shipped, { ...latencyOpts, repeats: 1 }); warm = true; } // the first timings of a process run slow
      const l = measureLatency(shipped, latencyOpts);
      c.latencyMs = l.prefillMs.min + latencyOpts.genLen * l.decodeMsPerToken.min; // min: interference only ever adds time
    }
    return c;
  };

  const { candidates, log: trainLog } = o.candidates
    ? allCandidates(space, join(o.adapter, TRAIN_LOG), o.topK)
    : { candidates: namedCandidates(space).filter((c) => c.name === 'maximal'), log: null };
  const space1 = space.groups.reduce((a, g) => a * g.choices.length, 1);
  log(`lonas search: ${space.groups.length} groups (${space1.toExponential(2)} sub-networks), ${examples.length} validation examples (${source}), ` +
    `score ${score.name}, cost ${o.objective}, ${candidates.length} candidates + ${o.evals} NSGA-II evaluations (population ${o.population}, seed ${o.seed})`);
  if (trainLog && trainLog.skipped) log(`lonas search: ${trainLog.skipped} training-log entries do not fit this search space and were skipped`);
  const bar = new SearchBar(score.name);
  let result;
  try {
    result = await runSearch({
      space, outDir: o.out, score, cost, objective: o.objective, evaluations: o.evals, population: o.population, seed: o.seed,
      candidates, ref: o.refAcc, delta,
      settings: { model: resolve(o.model), adapter: resolve(o.adapter), mode: o.mode, objective: o.objective, validation: source, examples: examples.length, evals: o.evals, population: o.population, seed: o.seed },
      onProgress: (p) => bar.update(p),
    });
  } finally {
    bar.stop();
  }
  const r = result;
  const cached = r.evaluations.length - r.measured;
  log(`lonas search: ${r.evaluations.length} evaluations (${r.measured} measured, ${cached} from ${join(o.out, EVALUATIONS_FILE)})${r.stopped ? `; NSGA-II stopped early: ${r.stopped}` : ''}`);
  if (!r.satisfied) log(`lonas search: WARNING no configuration has ${score.name} ${score.name === 'loss' ? '<' : '>'} ${r.threshold.toFixed(4)}; best.json holds the best-scoring one instead`);
  const max = r.evaluations.find((e) => e.source === 'maximal');
  const costName = o.objective === 'latency' ? 'latency_ms' : o.objective;
  const costOf = (e: CostRecord) => (o.objective === 'macs' ? e.macs : o.objective === 'params' ? e.params : e.latencyMs ?? NaN);
  const ratio = max ? ` (${(costOf(r.best) / costOf(max)).toFixed(3)}× maximal)` : '';
  process.stdout.write(`front: ${r.front.length} configuration${r.front.length === 1 ? '' : 's'}; ref ${score.name} ${r.ref.toFixed(4)}, threshold ${r.threshold.toFixed(4)}\n` +
    `best: ${score.name} ${r.best.score.toFixed(4)}, ${costName} ${o.objective === 'latency' ? costOf(r.best).toFixed(2) : human(costOf(r.best))}${ratio}, params ${human(r.best.params)}, macs ${human(r.best.macs)} [${r.best.source}]\n` +
    `written: ${['best.json', 'pareto.json', 'pareto.svg', 'search_progression.csv', EVALUATIONS_FILE].map((f) => join(o.out, f)).join(', ')}\n`);
}
