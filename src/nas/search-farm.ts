/**
 * Distributed search under mpirun (issue 16): rank 0 runs NSGA-II and owns the evaluation cache
 * (src/nas/search.ts); before each generation it sends the uncached configurations to every rank, rank r
 * measures configurations r, r + N, r + 2N, …, and one all-reduce returns every measurement to rank 0. Every
 * rank loads the super-network once and serves until rank 0 says it is done. Scores do not depend on the rank
 * that measured them (same model, same data, same kernels), so pareto.json and best.json equal the
 * 1-process search; a measured latency does (ranks sharing a machine slow each other down).
 */
import type { SubnetConfig } from './subnet.ts';
import type { MeasureMany, Measurement } from './search.ts';
import { bcastJson } from '../dist/mpi.ts';
import type { World } from '../dist/mpi.ts';

export type MeasureOne = (config: SubnetConfig, withLatency: boolean) => Promise<Measurement>;

/** the work rank 0 hands out; null ends the workers' loop */
type Job = { configs: SubnetConfig[]; withLatency: boolean } | null;

/** per configuration: score, params, macs, latency (−1: not measured), seconds */
const SLOTS = 5;

async function measureShare(w: World, job: NonNullable<Job>, measureOne: MeasureOne): Promise<Measurement[]> {
  const out = new Float64Array(job.configs.length * SLOTS);
  for (let i = w.rank; i < job.configs.length; i += w.size) {
    const m = await measureOne(job.configs[i], job.withLatency);
    out.set([m.score, m.cost.params, m.cost.macs, m.cost.latencyMs ?? -1, m.seconds], i * SLOTS);
  }
  w.allreduceSum(out); // every slot is written by exactly one rank, so the sum is that rank's value
  return job.configs.map((_, i) => {
    const [score, params, macs, latency, seconds] = out.subarray(i * SLOTS, (i + 1) * SLOTS);
    return { score, cost: { params, macs, ...(latency >= 0 ? { latencyMs: latency } : {}) }, seconds };
  });
}

export interface EvaluationFarm {
  /** rank 0: measure these configurations over all ranks */
  measureMany: MeasureMany;
  /** ranks ≠ 0: measure what rank 0 sends until it calls stop() */
  serve(): Promise<void>;
  /** rank 0: release the serving ranks */
  stop(): void;
}

export function evaluationFarm(w: World, measureOne: MeasureOne): EvaluationFarm {
  return {
    measureMany: async (configs, withLatency) => {
      const job = bcastJson<Job>(w, { configs, withLatency });
      return measureShare(w, job!, measureOne);
    },
    serve: async () => {
      for (let job = bcastJson<Job>(w, undefined); job; job = bcastJson<Job>(w, undefined)) await measureShare(w, job, measureOne);
    },
    stop: () => {
      bcastJson<Job>(w, null);
    },
  };
}
