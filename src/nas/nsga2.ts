/**
 * NSGA-II (Deb et al. 2002) over integer genes, as pymoo runs it for LoNAS / BootstrapNAS: random integer
 * initial population, simulated binary crossover and polynomial mutation on the genes as real numbers, each
 * followed by rounding (pymoo's RoundingRepair, numpy's round-half-to-even), duplicate elimination, rank-and-
 * crowding survival and binary tournaments by domination, then crowding distance. All objectives are
 * minimised. Everything random comes from one seeded Rng, so a seed and the objective values fix the run.
 *
 * Differences from pymoo 0.6 (deliberate):
 *  - mutation probability is per gene (pymoo 0.6's PM(prob) is per individual, with per-gene 1/n_var);
 *  - offspring duplicating any configuration evaluated before (not only the current population) are dropped,
 *    so the evaluation budget buys distinct configurations;
 *  - the initial population is re-drawn until it holds `population` distinct genomes (pymoo keeps fewer);
 *  - the budget is exact: the last generation is bred in full but only evaluated up to the budget (pymoo may
 *    overshoot by a generation), so a run with a larger budget extends a smaller one evaluation for evaluation.
 */
import { Rng } from '../tensor/rng.ts';
import { roundHalfEven } from '../util/round.ts';

export interface Nsga2Options {
  /** choices per gene: gene k takes the integers 0 … sizes[k] − 1 */
  sizes: number[];
  /** evaluation budget (default 200) */
  evaluations?: number;
  /** population size (default 8) */
  population?: number;
  seed?: number;
  /** probability that a mating recombines (default 0.9) */
  crossoverProb?: number;
  /** SBX distribution index (default 10) */
  crossoverEta?: number;
  /** per-gene probability that SBX touches a gene of a recombining pair (pymoo's prob_var, default 0.5) */
  crossoverGeneProb?: number;
  /** per-gene polynomial mutation probability (default 0.02) */
  mutationProb?: number;
  /** polynomial mutation distribution index (default 3) */
  mutationEta?: number;
  /** mating rounds per generation before giving up on finding new offspring (pymoo: 100) */
  maxMatingRounds?: number;
  /** called after every evaluation */
  onEvaluation?: (ind: Individual, evaluated: readonly Individual[]) => void;
  /** called with each generation's genomes before they are evaluated one by one (lets them be measured in parallel) */
  beforeGeneration?: (genomes: number[][]) => Promise<void> | void;
}

export interface Individual {
  genes: number[];
  objectives: number[];
  /** evaluation order, from 0 */
  index: number;
  /** non-domination rank and crowding distance from the last survival it took part in */
  rank: number;
  crowding: number;
}

export interface Nsga2Result {
  /** every evaluated individual, in evaluation order (genomes distinct) */
  evaluated: Individual[];
  /** the final population */
  population: Individual[];
  /** non-dominated individuals among all evaluated */
  front: Individual[];
  generations: number;
  /** why the search stopped before spending the budget, if it did */
  stopped?: string;
}

export type ObjectiveFn = (genes: number[]) => number[] | Promise<number[]>;

/** a dominates b: no worse in every objective and better in one (minimisation). */
export function dominates(a: readonly number[], b: readonly number[]): boolean {
  let better = false;
  for (let k = 0; k < a.length; k++) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) better = true;
  }
  return better;
}

/** Deb's fast non-dominated sort: fronts of indices into F, best first (each front in index order). */
export function nonDominatedSort(F: readonly (readonly number[])[]): number[][] {
  const n = F.length;
  const dominated: number[][] = Array.from({ length: n }, () => []);
  const count = new Int32Array(n);
  const fronts: number[][] = [[]];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (dominates(F[i], F[j])) {
        dominated[i].push(j);
        count[j]++;
      } else if (dominates(F[j], F[i])) {
        dominated[j].push(i);
        count[i]++;
      }
    }
  }
  for (let i = 0; i < n; i++) if (count[i] === 0) fronts[0].push(i);
  while (fronts[fronts.length - 1].length) {
    const next: number[] = [];
    for (const i of fronts[fronts.length - 1]) for (const j of dominated[i]) if (--count[j] === 0) next.push(j);
    next.sort((a, b) => a - b);
    fronts.push(next);
  }
  fronts.pop();
  return fronts;
}

/**
 * Crowding distance of the points of one front (pymoo's calc_crowding_distance): per objective, the gap
 * between a point's neighbours in sorted order divided by the objective's range, averaged over objectives;
 * the extreme points of any objective get Infinity, and so do all points of a front of ≤ 2.
 */
export function crowdingDistance(F: readonly (readonly number[])[]): number[] {
  const n = F.length;
  if (n <= 2) return new Array(n).fill(Infinity);
  const m = F[0].length;
  const cd = new Array<number>(n).fill(0);
  for (let k = 0; k < m; k++) {
    const order = F.map((_, i) => i).sort((a, b) => F[a][k] - F[b][k] || a - b); // stable, as mergesort
    const norm = F[order[n - 1]][k] - F[order[0]][k];
    for (let s = 0; s < n; s++) {
      const here = F[order[s]][k];
      const last = s === 0 ? Infinity : here - F[order[s - 1]][k];
      const next = s === n - 1 ? Infinity : F[order[s + 1]][k] - here;
      if (norm === 0) continue; // pymoo: NaN → 0 for an objective with no spread
      cd[order[s]] += last / norm + next / norm;
    }
  }
  return cd.map((d) => d / m);
}

const keyOf = (genes: readonly number[]) => genes.join(',');

/** Simulated binary crossover of two parents (pymoo's cross_sbx), genes bounded to [0, ub]. */
function sbx(p1: number[], p2: number[], ub: number[], eta: number, geneProb: number, rng: Rng): [number[], number[]] {
  const c1 = p1.slice(),
    c2 = p2.slice();
  for (let k = 0; k < p1.length; k++) {
    // pymoo draws the "cross this gene" mask first; then skips near-equal genes and fixed genes
    if (!(rng.uniform() < geneProb)) continue;
    if (Math.abs(p1[k] - p2[k]) <= 1e-14 || ub[k] === 0) continue;
    const y1 = Math.min(p1[k], p2[k]),
      y2 = Math.max(p1[k], p2[k]);
    const xl = 0,
      xu = ub[k];
    const delta = y2 - y1;
    const rand = rng.uniform();
    const betaq = (beta: number) => {
      const alpha = 2 - beta ** -(eta + 1);
      return rand <= 1 / alpha ? (rand * alpha) ** (1 / (eta + 1)) : (1 / (2 - rand * alpha)) ** (1 / (eta + 1));
    };
    let a = 0.5 * (y1 + y2 - betaq(1 + (2 * (y1 - xl)) / delta) * delta);
    let b = 0.5 * (y1 + y2 + betaq(1 + (2 * (xu - y2)) / delta) * delta);
    if (rng.uniform() < 0.5) [a, b] = [b, a]; // pymoo's prob_bin 0.5: exchange the children's values
    c1[k] = Math.min(Math.max(a, xl), xu);
    c2[k] = Math.min(Math.max(b, xl), xu);
  }
  return [c1, c2];
}

/** Polynomial mutation (pymoo's mut_pm), each gene with probability `prob`, bounded to [0, ub]. */
function polynomialMutation(x: number[], ub: number[], eta: number, prob: number, rng: Rng): number[] {
  const y = x.slice();
  for (let k = 0; k < x.length; k++) {
    if (!(rng.uniform() < prob) || ub[k] === 0) continue;
    const xl = 0,
      xu = ub[k];
    const d1 = (x[k] - xl) / (xu - xl),
      d2 = (xu - x[k]) / (xu - xl);
    const pow = 1 / (eta + 1);
    const rand = rng.uniform();
    let dq: number;
    if (rand <= 0.5) dq = (2 * rand + (1 - 2 * rand) * (1 - d1) ** (eta + 1)) ** pow - 1;
    else dq = 1 - (2 * (1 - rand) + 2 * (rand - 0.5) * (1 - d2) ** (eta + 1)) ** pow;
    y[k] = Math.min(Math.max(x[k] + dq * (xu - xl), xl), xu);
  }
  return y;
}

/**
 * Rank-and-crowding survival: whole fronts while they fit, the splitting front by descending crowding
 * distance (ties in random order). Sets rank and crowding on every individual of the fronts it visits.
 */
function survive(pop: Individual[], n: number, rng: Rng): Individual[] {
  const fronts = nonDominatedSort(pop.map((p) => p.objectives));
  const out: Individual[] = [];
  for (let r = 0; r < fronts.length && out.length < n; r++) {
    const front = fronts[r];
    const cd = crowdingDistance(front.map((i) => pop[i].objectives));
    front.forEach((i, j) => {
      pop[i].rank = r;
      pop[i].crowding = cd[j];
    });
    if (out.length + front.length <= n) {
      out.push(...front.map((i) => pop[i]));
      continue;
    }
    // pymoo's randomized_argsort: a random permutation, then sort by crowding (descending)
    const perm = rng.shuffle(front.map((_, j) => j));
    perm.sort((a, b) => cd[b] - cd[a]);
    for (const j of perm.slice(0, n - out.length)) out.push(pop[front[j]]);
  }
  return out;
}

/** pymoo's NSGA-II binary tournament: domination decides, else the larger crowding distance, else a coin. */
function tournament(a: Individual, b: Individual, rng: Rng): Individual {
  if (dominates(a.objectives, b.objectives)) return a;
  if (dominates(b.objectives, a.objectives)) return b;
  if (a.crowding > b.crowding) return a;
  if (b.crowding > a.crowding) return b;
  return rng.uniform() < 0.5 ? a : b;
}

/** Parents for `nMatings` matings: each a tournament between two individuals drawn from concatenated permutations. */
function selectParents(pop: Individual[], nMatings: number, rng: Rng): [Individual, Individual][] {
  const need = nMatings * 2 * 2; // matings × parents × pressure
  const draws: number[] = [];
  while (draws.length < need) draws.push(...rng.shuffle(pop.map((_, i) => i)));
  const winners: Individual[] = [];
  for (let t = 0; t < nMatings * 2; t++) winners.push(tournament(pop[draws[2 * t]], pop[draws[2 * t + 1]], rng));
  return Array.from({ length: nMatings }, (_, m) => [winners[2 * m], winners[2 * m + 1]]);
}

export async function nsga2(evaluate: ObjectiveFn, o: Nsga2Options): Promise<Nsga2Result> {
  const sizes = o.sizes;
  if (sizes.length === 0) throw new Error('NSGA-II needs at least one gene (the search space has no groups)');
  for (const s of sizes) if (!Number.isInteger(s) || s < 1) throw new Error(`NSGA-II: every gene needs ≥ 1 choice, got ${s}`);
  const budget = o.evaluations ?? 200,
    popSize = o.population ?? 8;
  if (!Number.isInteger(budget) || budget < 1) throw new Error(`NSGA-II: evaluations must be a positive integer, got ${budget}`);
  if (!Number.isInteger(popSize) || popSize < 2) throw new Error(`NSGA-II: population must be an integer ≥ 2, got ${popSize}`);
  const pc = o.crossoverProb ?? 0.9,
    etaC = o.crossoverEta ?? 10,
    pcGene = o.crossoverGeneProb ?? 0.5;
  const pm = o.mutationProb ?? 0.02,
    etaM = o.mutationEta ?? 3;
  const maxRounds = o.maxMatingRounds ?? 100;
  const ub = sizes.map((s) => s - 1);
  const spaceSize = sizes.reduce((a, b) => a * b, 1);
  const rng = new Rng(o.seed ?? 0);

  const evaluated: Individual[] = [];
  const seen = new Set<string>();
  const evalOne = async (genes: number[]): Promise<Individual> => {
    const objectives = await evaluate(genes.slice());
    if (!Array.isArray(objectives) || objectives.some((v) => typeof v !== 'number' || Number.isNaN(v))) {
      throw new Error(`NSGA-II: the objective function returned ${JSON.stringify(objectives)} for genes [${genes.join(', ')}]`);
    }
    if (evaluated.length && objectives.length !== evaluated[0].objectives.length)
      throw new Error('NSGA-II: the number of objectives changed between evaluations');
    const ind: Individual = { genes, objectives, index: evaluated.length, rank: 0, crowding: 0 };
    evaluated.push(ind);
    seen.add(keyOf(genes));
    o.onEvaluation?.(ind, evaluated);
    return ind;
  };

  // Initial population: integer-uniform genes (column by column, as IntegerRandomSampling), distinct.
  const initialSize = Math.min(popSize, budget, spaceSize);
  const initial: number[][] = [];
  const initKeys = new Set<string>();
  for (let round = 0; initial.length < initialSize && round < maxRounds; round++) {
    const n = initialSize - initial.length;
    const cols = sizes.map((s) => Array.from({ length: n }, () => rng.int(s)));
    for (let i = 0; i < n; i++) {
      const g = cols.map((c) => c[i]);
      if (!initKeys.has(keyOf(g))) {
        initKeys.add(keyOf(g));
        initial.push(g);
      }
    }
  }
  let pop: Individual[] = [];
  await o.beforeGeneration?.(initial);
  for (const g of initial) pop.push(await evalOne(g));
  pop = survive(pop, pop.length, rng);

  let generations = 0;
  let stopped: string | undefined;
  while (evaluated.length < budget) {
    if (seen.size >= spaceSize) {
      stopped = `every one of the ${spaceSize} configurations has been evaluated`;
      break;
    }
    const want = popSize; // a full generation is bred even when less budget remains, so a larger budget extends a run
    const offspring: number[][] = [];
    const offKeys = new Set<string>();
    for (let round = 0; offspring.length < want && round < maxRounds; round++) {
      const nMatings = Math.ceil((want - offspring.length) / 2);
      for (const [a, b] of selectParents(pop, nMatings, rng)) {
        let kids: number[][];
        if (rng.uniform() < pc) kids = sbx(a.genes, b.genes, ub, etaC, pcGene, rng).map((c) => c.map(roundHalfEven));
        else kids = [a.genes.slice(), b.genes.slice()];
        for (const kid of kids) {
          const child = polynomialMutation(kid, ub, etaM, pm, rng).map(roundHalfEven);
          const k = keyOf(child);
          if (seen.has(k) || offKeys.has(k) || offspring.length >= want) continue;
          offKeys.add(k);
          offspring.push(child);
        }
      }
    }
    if (offspring.length === 0) {
      stopped = `no new configuration found in ${maxRounds} mating rounds (the population has converged)`;
      break;
    }
    const children: Individual[] = [];
    const generation = offspring.slice(0, budget - evaluated.length);
    await o.beforeGeneration?.(generation);
    for (const g of generation) children.push(await evalOne(g));
    pop = survive([...pop, ...children], popSize, rng);
    generations++;
  }
  const fronts = nonDominatedSort(evaluated.map((e) => e.objectives));
  return { evaluated, population: pop, front: (fronts[0] ?? []).map((i) => evaluated[i]), generations, stopped };
}
