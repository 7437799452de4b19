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
  params: number;
  nonZeroParams: number;
  /** multiply-accumulates of one 1×L forward pass (L in `macsSeqLen`) */
  macs: number;
  latency?: { prefillMs: number; decodeMsPerToken: number; promptLen: number; genLen: number };
  /** measured prefill (or decode) speed-up against the row named in `speedupBaseline` */
  speedup?: { prefill: number; decode: number } | null;
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
  macsSeqLen: number;
  speedupBaseline: string;
  rows: ResultRow[];
  pareto?: { costName: 'macs' | 'params' | 'latency'; scoreName: 'accuracy' | 'loss'; points: ParetoPoint[] } | null;
  curves: Curve[];
  stages: { name: string; seconds: number; outputs: string[] }[];
  notes: string[];
}
