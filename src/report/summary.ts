import type { CostDefinition, Spread } from '../nas/cost.ts';

/**
 * summary.json: every number a run reports, in one plain-data structure; report.html is rendered from it.
 * Everything here is measured by the run that wrote it (nothing assumed or copied).
 */
export interface TaskScore {
  accuracy: number;
  /** examples scored */
  n: number;
  /** 95% Wilson interval */
  ci: [number, number];
}

export interface ResultRow {
  /** e.g. "LoRA baseline", "LoNAS maximal", "LoNAS heuristic", "LoNAS searched (extracted)" */
  name: string;
  /** the sub-network configuration (group id → value), when the row is one */
  subnet?: Record<string, number> | null;
  perTask: Record<string, TaskScore>;
  /** mean of the per-task accuracies */
  average: number;
  /** which evaluation protocol produced the accuracies */
  mode: 'generate' | 'loglik';
  /** parameters under the run's cost definition (`RunSummary.cost`: merged when the run ships merged) */
  params: number;
  nonZeroParams: number;
  /** multiply-accumulates of one 1×seqLen forward pass under the run's cost definition */
  macs: number;
  latency?: {
    /** median and min–max over the timed runs */
    prefillMs: Spread;
    decodeMsPerToken: Spread;
    promptLen: number;
    genLen: number;
    /** share of a decode step that streaming the weights does not explain (src/nas/cost.ts overheadShare) */
    overheadShare: number;
  };
  /** speed-up against the row named in `speedupBaseline`: per-run ratios of interleaved runs, median and min–max */
  speedup?: { prefill: Spread; decode: Spread } | null;
  /** true when the numbers come from the physically extracted (smaller) model */
  extracted?: boolean;
}

export interface ParetoPoint {
  label?: string;
  cost: number;
  /** accuracy (higher is better) or loss (lower is better), see `scoreName` */
  score: number;
  onFront: boolean;
  chosen: boolean;
}

export interface Curve {
  name: string;
  train: { step: number; loss: number }[];
  val?: { step: number; loss: number }[];
}

export interface RunSummary {
  title: string;
  method: 'lonas' | 'shears' | 'sqft' | 'lora';
  createdAt: string;
  machine: { cpu: string; cores: number; node: string; kernels: string; blasCore?: string; threads?: number };
  versions: Record<string, string>;
  /** the validated recipe exactly as run */
  recipe: unknown;
  seeds: Record<string, number>;
  tasks: string[];
  /** what params and MACs count, in every row and in the Pareto chart */
  cost: CostDefinition;
  /** what parameter and MAC reductions are measured against (the base model) */
  reference: { name: string; params: number; nonZeroParams: number; macs: number } | null;
  speedupBaseline: string;
  rows: ResultRow[];
  pareto?: { costName: 'macs' | 'params' | 'latency'; scoreName: 'accuracy' | 'loss'; points: ParetoPoint[] } | null;
  curves: Curve[];
  stages: { name: string; seconds: number; outputs: string[] }[];
  notes: string[];
}
