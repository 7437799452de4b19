/**
 * `lonas search` as a library call: load a base model with an elastic adapter as a SuperNet, choose the
 * validation data (src/nas/validation.ts), build the score and cost objectives (src/nas/objectives.ts), then
 * run the candidates + NSGA-II search (src/nas/search.ts) and summarise the chosen configuration.
 */
import { join, resolve } from 'node:path';
import { loadTokenizer } from '../io/tokenizer.ts';
import { loadWithAdapter } from './load.ts';
import { TRAIN_LOG, allCandidates, namedCandidates } from './candidates.ts';
import { EVALUATIONS_FILE, runSearch } from './search.ts';
import type { CostObjective, CostRecord, SearchProgress, SearchResult } from './search.ts';
import { readRunOptions, validationExamples, validationTasks } from './validation.ts';
import { accuracyScore, lossScore, modelFingerprint, searchCost } from './objectives.ts';
import { world } from '../dist/mpi.ts';
import { evaluationFarm } from './search-farm.ts';
import { costDefinitionLabel } from './cost.ts';

export type SearchMode = 'loss' | 'loglik' | 'generate';

export interface AdapterSearchOptions {
  model: string;
  adapter: string;
  out: string;
  val?: string;
  valSize?: number;
  data?: string;
  limit?: number;
  evals: number;
  population: number;
  objective: CostObjective;
  /** sequence length of the MAC count */
  costSeqLen: number;
  /** count the configurations merged (as extract --merge ships them) */
  merged: boolean;
  mode: SearchMode;
  refAcc?: number;
  delta?: number;
  seed: number;
  candidates: boolean;
  topK: number;
  cutoffLen?: number;
  batchSize: number;
  latencyPromptLen: number;
  latencyGenLen: number;
  latencyRepeats: number;
}

export interface AdapterSearchHooks {
  /** one line of progress information (stderr for the command) */
  log(line: string): void;
  onProgress?(p: SearchProgress, scoreName: string): void;
  /** called when the search loop ends (returns or throws), before the closing log lines */
  onSearchEnd?(): void;
}

/**
 * Runs the search; `summary` is the human-readable result (front size, best configuration, files written).
 * Under mpirun every rank loads the super-network and measures its share of each generation (src/nas/search-farm.ts);
 * rank 0 runs NSGA-II, owns the cache and returns the result, the other ranks return null.
 */
export async function searchAdapter(
  o: AdapterSearchOptions,
  hooks: AdapterSearchHooks,
): Promise<{ result: SearchResult; summary: string } | null> {
  const ranks = world();
  const log = (line: string) => {
    if (ranks.rank === 0) hooks.log(line);
  };
  const { supernet } = loadWithAdapter(o.model, o.adapter);
  if (!supernet || supernet.space.groups.length === 0)
    throw new Error(`${o.adapter}: the adapter has no search space (fine-tuned with --space none); there is nothing to search`);
  const space = supernet.space;
  const run = readRunOptions(o.adapter);
  const { examples, source, warning } = validationExamples(o, run);
  if (warning) log(`lonas search: WARNING ${warning}`);
  const fingerprint = modelFingerprint(o.model, o.adapter);
  const tok = loadTokenizer(o.model);
  const lossOptions = {
    cutoffLen: o.cutoffLen ?? run?.cutoffLen ?? 256,
    trainOnInputs: run?.trainOnInputs ?? true,
    batchSize: o.batchSize,
  };
  const score =
    o.mode === 'loss'
      ? lossScore(supernet, tok, examples, lossOptions, fingerprint)
      : accuracyScore(supernet, tok, validationTasks(o.val, examples), { mode: o.mode, batchSize: o.batchSize }, fingerprint);
  const delta = o.delta ?? (score.name === 'loss' ? 0.05 : 0.01);
  const costDefinition = { merged: o.merged, seqLen: o.costSeqLen };
  const cost = searchCost(supernet, o.objective, costDefinition, {
    promptLen: o.latencyPromptLen,
    genLen: o.latencyGenLen,
    repeats: o.latencyRepeats,
  });
  const farm =
    ranks.size > 1
      ? evaluationFarm(ranks, async (config, withLatency) => {
          const t0 = performance.now();
          const s = await score.evaluate(config);
          return { score: s, cost: cost(config, withLatency), seconds: (performance.now() - t0) / 1000 };
        })
      : null;
  if (farm && ranks.rank !== 0) {
    await farm.serve();
    return null;
  }

  const { candidates, log: trainLog } = o.candidates
    ? allCandidates(space, join(o.adapter, TRAIN_LOG), o.topK)
    : { candidates: namedCandidates(space).filter((c) => c.name === 'maximal'), log: null };
  const space1 = space.groups.reduce((a, g) => a * g.choices.length, 1);
  log(
    `lonas search: ${space.groups.length} groups (${space1.toExponential(2)} sub-networks), ${examples.length} validation examples (${source}), ` +
      `score ${score.name}, cost ${o.objective} (${costDefinitionLabel(costDefinition)}), ${candidates.length} candidates + ${o.evals} NSGA-II evaluations (population ${o.population}, seed ${o.seed})`,
  );
  if (trainLog?.skipped) log(`lonas search: ${trainLog.skipped} training-log entries do not fit this search space and were skipped`);
  let r: SearchResult;
  try {
    r = await runSearch({
      space,
      outDir: o.out,
      score,
      cost,
      costDefinition,
      objective: o.objective,
      evaluations: o.evals,
      population: o.population,
      seed: o.seed,
      candidates,
      ref: o.refAcc,
      delta,
      settings: {
        model: resolve(o.model),
        adapter: resolve(o.adapter),
        mode: o.mode,
        objective: o.objective,
        validation: source,
        examples: examples.length,
        evals: o.evals,
        population: o.population,
        seed: o.seed,
      },
      onProgress: (p) => hooks.onProgress?.(p, score.name),
      measureMany: farm?.measureMany,
    });
  } finally {
    hooks.onSearchEnd?.();
  }
  farm?.stop();
  const cached = r.evaluations.length - r.measured;
  log(
    `lonas search: ${r.evaluations.length} evaluations (${r.measured} measured, ${cached} from ${join(o.out, EVALUATIONS_FILE)})${r.stopped ? `; NSGA-II stopped early: ${r.stopped}` : ''}`,
  );
  if (!r.satisfied)
    log(
      `lonas search: WARNING no configuration has ${score.name} ${score.name === 'loss' ? '<' : '>'} ${r.threshold.toFixed(4)}; best.json holds the best-scoring one instead`,
    );
  return { result: r, summary: searchSummary(r, score.name, o) };
}

const human = (n: number) =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);

/** The front size, the reference and threshold, the chosen configuration (cost relative to maximal) and the files written. */
function searchSummary(r: SearchResult, scoreName: string, o: Pick<AdapterSearchOptions, 'objective' | 'out'>): string {
  const max = r.evaluations.find((e) => e.source === 'maximal');
  const costName = o.objective === 'latency' ? 'latency_ms' : o.objective;
  const costOf = (e: CostRecord) => (o.objective === 'macs' ? e.macs : o.objective === 'params' ? e.params : (e.latencyMs ?? NaN));
  const ratio = max ? ` (${(costOf(r.best) / costOf(max)).toFixed(3)}× maximal)` : '';
  // the objective's cost comes first, with its ratio; each other cost follows once
  const others = (['params', 'macs'] as const)
    .filter((k) => k !== o.objective)
    .map((k) => `, ${k} ${human(r.best[k])}`)
    .join('');
  return (
    `front: ${r.front.length} configuration${r.front.length === 1 ? '' : 's'}; ref ${scoreName} ${r.ref.toFixed(4)}, threshold ${r.threshold.toFixed(4)}\n` +
    `best: ${scoreName} ${r.best.score.toFixed(4)}, ${costName} ${o.objective === 'latency' ? costOf(r.best).toFixed(2) : human(costOf(r.best))}${ratio}${others} [${r.best.source}]\n` +
    `written: ${['best.json', 'pareto.json', 'pareto.svg', 'search_progression.csv', EVALUATIONS_FILE].map((f) => join(o.out, f)).join(', ')}\n`
  );
}
