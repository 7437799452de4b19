/**
 * Sub-network search (spec.md §4): evaluate the cheap candidates, then NSGA-II over one gene per search-space
 * group (the index into the group's choices), with two objectives — the validation score (loss, or accuracy
 * negated) and one cost (MACs, parameters or measured latency) — both minimised.
 *
 * Every evaluation is cached in `<out>/evaluations.jsonl` (one JSON line per configuration, appended as soon
 * as it is measured). NSGA-II is deterministic given its seed and the objective values, so re-running the
 * same search replays it, taking every configuration already in the cache for free: an interrupted search
 * resumes where it stopped, and a larger --evals extends a finished one.
 *
 * Outputs in `<out>`: search_progression.csv (every evaluation), pareto.json (the non-dominated set),
 * pareto.svg (chart) and best.json = the fewest-cost configuration whose score is within `delta` of the
 * reference (accuracy > ref − delta, or loss < ref + delta; ref defaults to the maximal sub-network's score).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeFileAtomic } from '../io/files.ts';
import { writeBest, writePareto } from '../io/artifacts.ts';
import type { SearchSpace } from './search-space.ts';
import type { SubnetConfig } from './subnet.ts';
import { validateSubnet } from './subnet.ts';
import { configKey } from './candidates.ts';
import type { Candidate } from './candidates.ts';
import { nonDominatedSort, nsga2 } from './nsga2.ts';
import { paretoSvg } from './chart.ts';
import type { CostDefinition } from './cost.ts';

/** Scores one configuration on the validation data (the model's active sub-network is the evaluator's business). */
export type Evaluator = (config: SubnetConfig) => Promise<number> | number;

export type ScoreName = 'loss' | 'accuracy';
export type CostObjective = 'macs' | 'params' | 'latency';

export interface Score {
  /** 'loss' is minimised, 'accuracy' maximised */
  name: ScoreName;
  evaluate: Evaluator;
  /**
   * Identifies everything the score depends on (model, adapter, validation data, mode): a cache written
   * under another key is refused rather than silently mixed in.
   */
  key: string;
}

export interface CostRecord {
  /** parameters at the active configuration under SearchOptions.costDefinition (unmerged: base slices + active adapters) */
  params: number;
  /** MACs of a 1×seqLen forward pass at the active configuration under SearchOptions.costDefinition */
  macs: number;
  /** measured prefill + decode time (ms), when asked for */
  latencyMs?: number;
}

export type CostFn = (config: SubnetConfig, withLatency: boolean) => CostRecord | Promise<CostRecord>;

export interface Evaluation extends CostRecord {
  /** order of evaluation in this search, from 0 */
  index: number;
  /** candidate name ("maximal", "low-loss-1", …) or "nsga2" */
  source: string;
  config: SubnetConfig;
  score: number;
  /** taken from evaluations.jsonl rather than measured now */
  cached: boolean;
  seconds: number;
}

export interface SearchProgress {
  done: number;
  total: number;
  /** size of the current non-dominated set */
  front: number;
  /** best score so far (lowest loss / highest accuracy) */
  bestScore: number;
  last: Evaluation;
}

export interface SearchOptions {
  space: SearchSpace;
  outDir: string;
  score: Score;
  cost: CostFn;
  /** what `cost` counts (merged or not, sequence length): part of the cache key, recorded in pareto.json and best.json */
  costDefinition: CostDefinition;
  objective: CostObjective;
  /** NSGA-II evaluation budget (candidates come on top) */
  evaluations: number;
  population: number;
  seed: number;
  /** evaluated first, in order; "maximal" is added when no reference score is given */
  candidates: Candidate[];
  /** reference score; default: the maximal sub-network's */
  ref?: number;
  delta: number;
  /** recorded in pareto.json */
  settings?: Record<string, unknown>;
  onProgress?: (p: SearchProgress) => void;
  /**
   * measures many configurations at once (under mpirun, spread over the ranks: src/nas/search-farm.ts);
   * called with the uncached configurations of the candidates and of each NSGA-II generation
   */
  measureMany?: MeasureMany;
  /** draw pareto.svg (default true) */
  chart?: boolean;
}

export interface SearchResult {
  evaluations: Evaluation[];
  /** distinct configurations on the non-dominated front, by increasing cost */
  front: Evaluation[];
  best: Evaluation;
  ref: number;
  threshold: number;
  /** false when no configuration met the threshold (best is then the best-scoring one) */
  satisfied: boolean;
  /** evaluations measured in this run (not from the cache) */
  measured: number;
  /** why NSGA-II stopped before its budget, if it did */
  stopped?: string;
}

/** a configuration's score and cost, measured together */
export interface Measurement {
  score: number;
  cost: CostRecord;
  seconds: number;
}
export type MeasureMany = (configs: SubnetConfig[], withLatency: boolean) => Promise<Measurement[]>;

export const EVALUATIONS_FILE = 'evaluations.jsonl';
const CACHE_FORMAT = 1;

interface CacheEntry {
  config: SubnetConfig;
  score: number;
  params: number;
  macs: number;
  latency_ms?: number;
  seconds: number;
}

/** evaluations.jsonl: a header line with the score key, then one line per measured configuration (later lines win). */
class EvaluationCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly path: string;

  constructor(
    outDir: string,
    private readonly space: SearchSpace,
    key: string,
  ) {
    this.path = join(outDir, EVALUATIONS_FILE);
    if (!existsSync(this.path)) {
      writeFileSync(this.path, `${JSON.stringify({ type: 'header', format: CACHE_FORMAT, key })}\n`);
      return;
    }
    let text = readFileSync(this.path, 'utf8');
    if (text.length && !text.endsWith('\n')) {
      // a line cut short by an interruption: drop it
      text = text.slice(0, text.lastIndexOf('\n') + 1);
      truncateSync(this.path, Buffer.byteLength(text));
    }
    const lines = text.split('\n').filter((l) => l.trim());
    const header = lines.length ? JSON.parse(lines[0]) : null;
    if (header?.type !== 'header')
      throw new Error(`${this.path}: not a lonas evaluation cache (no header line); remove it or choose another --out`);
    if (header.key !== key) {
      throw new Error(
        `${this.path} was written by a search with a different model, adapter, validation data, mode or cost definition (--merged, --cost-seq-len); ` +
          'choose another --out (or delete the file to start over)',
      );
    }
    lines.slice(1).forEach((line, i) => {
      let rec: CacheEntry & { type?: string };
      try {
        rec = JSON.parse(line);
      } catch {
        throw new Error(`${this.path}:${i + 2}: not valid JSON`);
      }
      const cfg = validateSubnet(space, rec.config, `${this.path}:${i + 2}`);
      const k = configKey(space, cfg);
      this.entries.set(k, { ...this.entries.get(k), ...rec, config: cfg });
    });
  }

  get size(): number {
    return this.entries.size;
  }

  get(config: SubnetConfig): CacheEntry | undefined {
    return this.entries.get(configKey(this.space, config));
  }

  put(e: CacheEntry): void {
    this.entries.set(configKey(this.space, e.config), e);
    appendFileSync(this.path, `${JSON.stringify({ type: 'eval', ...e })}\n`);
  }
}

/** The configuration a genome stands for: gene k indexes group k's choices. */
export function configFromGenes(space: SearchSpace, genes: number[]): SubnetConfig {
  return Object.fromEntries(space.groups.map((g, k) => [g.id, g.choices[genes[k]]]));
}

const costOf = (e: CostRecord, objective: CostObjective): number => {
  const v = objective === 'macs' ? e.macs : objective === 'params' ? e.params : e.latencyMs;
  if (v === undefined) throw new Error(`no ${objective} measured for this configuration`);
  return v;
};

/** Objective vector (both minimised): score (accuracy negated), cost. */
const objectivesOf = (e: Evaluation, o: { score: Score; objective: CostObjective }) => [
  o.score.name === 'loss' ? e.score : -e.score,
  costOf(e, o.objective),
];

/** Non-dominated distinct configurations among the evaluations, by increasing cost. */
export function paretoFront(evals: Evaluation[], o: { score: Score; objective: CostObjective; space: SearchSpace }): Evaluation[] {
  const distinct = distinctEvaluations(evals, o.space);
  const fronts = nonDominatedSort(distinct.map((e) => objectivesOf(e, o)));
  return (fronts[0] ?? []).map((i) => distinct[i]).sort((a, b) => costOf(a, o.objective) - costOf(b, o.objective) || a.index - b.index);
}

function distinctEvaluations(evals: Evaluation[], space: SearchSpace): Evaluation[] {
  const seen = new Set<string>();
  return evals.filter((e) => {
    const k = configKey(space, e.config);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export async function runSearch(o: SearchOptions): Promise<SearchResult> {
  if (o.space.groups.length === 0)
    throw new Error('the adapter has no search space (trained with --space none): there is nothing to search');
  mkdirSync(o.outDir, { recursive: true });
  const cache = new EvaluationCache(o.outDir, o.space, `${o.score.key}:${JSON.stringify(o.costDefinition)}`);
  const wantLatency = o.objective === 'latency';
  const minimise = o.score.name === 'loss';
  const better = (a: number, b: number) => (minimise ? a < b : a > b);
  const evals: Evaluation[] = [];
  let measured = 0;
  const candidates = [...o.candidates];
  const maximal = candidates.find((c) => c.name === 'maximal');
  if (o.ref === undefined && !maximal) {
    const max = Object.fromEntries(o.space.groups.map((g) => [g.id, g.choices[0]]));
    candidates.unshift({ name: 'maximal', config: max });
  }
  const total = candidates.length + o.evaluations;
  let bestScore = minimise ? Infinity : -Infinity;
  const isCached = (entry: CacheEntry | undefined) => !!entry && (!wantLatency || entry.latency_ms !== undefined);
  const prefetched = new Map<string, Measurement>();
  const prefetch = async (configs: SubnetConfig[]) => {
    if (!o.measureMany) return;
    const todo = new Map<string, SubnetConfig>();
    for (const c of configs) if (!isCached(cache.get(c)) && !prefetched.has(configKey(o.space, c))) todo.set(configKey(o.space, c), c);
    if (todo.size === 0) return;
    const results = await o.measureMany([...todo.values()], wantLatency);
    [...todo.keys()].forEach((k, i) => prefetched.set(k, results[i]));
  };
  const measure = async (config: SubnetConfig, knownScore: number | undefined): Promise<Measurement> => {
    const pre = prefetched.get(configKey(o.space, config));
    if (pre) {
      prefetched.delete(configKey(o.space, config));
      return { ...pre, score: knownScore ?? pre.score };
    }
    const t0 = performance.now();
    const score = knownScore ?? (await o.score.evaluate(config));
    const cost = await o.cost(config, wantLatency);
    return { score, cost, seconds: (performance.now() - t0) / 1000 };
  };

  const evaluate = async (config: SubnetConfig, source: string): Promise<Evaluation> => {
    let entry = cache.get(config);
    const cached = isCached(entry);
    if (!entry || !cached) {
      const { score, cost: c, seconds } = await measure(config, entry?.score);
      if (typeof score !== 'number' || !Number.isFinite(score))
        throw new Error(`the evaluator returned ${score} for ${JSON.stringify(config)}`);
      const latency = c.latencyMs ?? entry?.latency_ms;
      entry = {
        config,
        score,
        params: c.params,
        macs: c.macs,
        ...(latency !== undefined ? { latency_ms: latency } : {}),
        seconds: (entry?.seconds ?? 0) + seconds,
      };
      cache.put(entry);
      measured++;
    }
    const e: Evaluation = {
      index: evals.length,
      source,
      config,
      score: entry.score,
      params: entry.params,
      macs: entry.macs,
      ...(entry.latency_ms !== undefined ? { latencyMs: entry.latency_ms } : {}),
      cached,
      seconds: entry.seconds,
    };
    evals.push(e);
    if (better(e.score, bestScore)) bestScore = e.score;
    o.onProgress?.({ done: evals.length, total, front: paretoFront(evals, o).length, bestScore, last: e });
    return e;
  };

  const checked = candidates.map((c) => ({ name: c.name, config: validateSubnet(o.space, c.config, `candidate ${c.name}`) }));
  await prefetch(checked.map((c) => c.config));
  for (const c of checked) await evaluate(c.config, c.name);
  const result = await nsga2(async (genes) => objectivesOf(await evaluate(configFromGenes(o.space, genes), 'nsga2'), o), {
    sizes: o.space.groups.map((g) => g.choices.length),
    evaluations: o.evaluations,
    population: o.population,
    seed: o.seed,
    beforeGeneration: (genomes) => prefetch(genomes.map((g) => configFromGenes(o.space, g))),
  });

  const ref = o.ref ?? evals.find((e) => e.source === 'maximal')!.score;
  const threshold = minimise ? ref + o.delta : ref - o.delta;
  const distinct = distinctEvaluations(evals, o.space);
  const ok = distinct.filter((e) => (minimise ? e.score < threshold : e.score > threshold));
  const satisfied = ok.length > 0;
  const pool = satisfied ? ok : distinct;
  const best = satisfied
    ? pool.reduce((a, b) =>
        costOf(b, o.objective) < costOf(a, o.objective) || (costOf(b, o.objective) === costOf(a, o.objective) && better(b.score, a.score))
          ? b
          : a,
      )
    : pool.reduce((a, b) => (better(b.score, a.score) ? b : a));
  const front = paretoFront(evals, o);
  const r: SearchResult = {
    evaluations: evals,
    front,
    best,
    ref,
    threshold,
    satisfied,
    measured,
    ...(result.stopped ? { stopped: result.stopped } : {}),
  };
  await writeOutputs(o, r);
  return r;
}

const csvField = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

function record(e: Evaluation, o: SearchOptions): { config: SubnetConfig } & Record<string, unknown> {
  return {
    config: e.config,
    objectives: { [o.score.name]: e.score, [o.objective]: costOf(e, o.objective) },
    params: e.params,
    macs: e.macs,
    ...(e.latencyMs !== undefined ? { latency_ms: e.latencyMs } : {}),
    source: e.source,
    index: e.index,
  };
}

async function writeOutputs(o: SearchOptions, r: SearchResult): Promise<void> {
  const withLatency = r.evaluations.some((e) => e.latencyMs !== undefined);
  const header = ['index', 'source', 'config', o.score.name, 'params', 'macs', ...(withLatency ? ['latency_ms'] : []), 'cached'];
  const rows = r.evaluations.map((e) =>
    [
      String(e.index),
      e.source,
      csvField(JSON.stringify(e.config)),
      String(e.score),
      String(e.params),
      String(e.macs),
      ...(withLatency ? [e.latencyMs === undefined ? '' : String(e.latencyMs)] : []),
      String(e.cached),
    ].join(','),
  );
  writeFileAtomic(join(o.outDir, 'search_progression.csv'), `${header.join(',')}\n${rows.map((l) => `${l}\n`).join('')}`);
  const summary = {
    score: o.score.name,
    direction: o.score.name === 'loss' ? 'minimise' : 'maximise',
    cost: o.objective,
    cost_definition: { merged: o.costDefinition.merged, seq_len: o.costDefinition.seqLen },
    ref: r.ref,
    delta: o.delta,
    threshold: r.threshold,
  };
  writePareto(o.outDir, {
    ...summary,
    evaluations: r.evaluations.length,
    best: r.best.index,
    settings: o.settings ?? {},
    front: r.front.map((e) => record(e, o)),
  });
  writeBest(o.outDir, { ...record(r.best, o), ...summary, satisfied: r.satisfied });
  if (o.chart === false) return;
  const named = new Set(['maximal', 'heuristic', 'minimal']);
  const frontKeys = new Set(r.front.map((e) => configKey(o.space, e.config)));
  const bestKey = configKey(o.space, r.best.config);
  const labels = new Map<string, string>();
  for (const e of r.evaluations) if (named.has(e.source)) labels.set(configKey(o.space, e.config), e.source);
  const points = distinctEvaluations(r.evaluations, o.space).map((e) => {
    const k = configKey(o.space, e.config);
    return {
      cost: costOf(e, o.objective),
      score: e.score,
      front: frontKeys.has(k),
      chosen: k === bestKey,
      ...(labels.has(k) ? { label: labels.get(k) } : {}),
    };
  });
  const title = `${r.evaluations.length} evaluations, ${r.front.length} on the front; chosen: ${o.score.name} ${r.best.score.toFixed(4)}`;
  writeFileAtomic(
    join(o.outDir, 'pareto.svg'),
    await paretoSvg(points, {
      costName: o.objective,
      costDefinition: o.costDefinition,
      scoreName: o.score.name,
      title,
      threshold: r.threshold,
    }),
  );
}
