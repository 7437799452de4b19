/**
 * Cheap candidate sub-networks (spec.md §4): the named ones (maximal, heuristic, minimal) and two read from
 * the super-network's training log (train_log.jsonl, lines `{type: 'step', micro: [{config, loss}]}`):
 *  - the most frequently sampled configuration (only when some configuration was sampled more than once);
 *  - the k configurations with the lowest mean training loss over their micro-batches in the second half
 *    of training (early micro-batches have high loss for every configuration and would only add noise).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { SearchSpace } from './search-space.ts';
import { NAMED_SUBNETS, namedSubnet, validateSubnet } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';

/** The training log `lonas finetune` writes beside the adapter (src/train/trainer.ts), one JSON line per step. */
export const TRAIN_LOG = 'train_log.jsonl';

export interface Candidate {
  /** e.g. "maximal", "most-frequent", "low-loss-1" */
  name: string;
  config: SubnetConfig;
  /** why it is a candidate (sample count, mean training loss) */
  note?: string;
}

/** The canonical key of a configuration: its values in the space's group order. */
export function configKey(space: SearchSpace, config: SubnetConfig): string {
  return space.groups.map((g) => config[g.id]).join(',');
}

export function namedCandidates(space: SearchSpace): Candidate[] {
  return NAMED_SUBNETS.map((name) => ({ name, config: namedSubnet(space, name) }));
}

export interface TrainLogCandidates {
  mostFrequent: Candidate | null;
  lowestLoss: Candidate[];
  /** micro-batch entries read, and those skipped because they do not fit this search space */
  entries: number;
  skipped: number;
}

/** Candidates from a training log; an absent log gives none. */
export function trainLogCandidates(logPath: string, space: SearchSpace, k = 3): TrainLogCandidates {
  const none: TrainLogCandidates = { mostFrequent: null, lowestLoss: [], entries: 0, skipped: 0 };
  if (!existsSync(logPath)) return none;
  const steps: { step: number; micro: { config: SubnetConfig; loss: number }[] }[] = [];
  let skipped = 0;
  readFileSync(logPath, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let rec: { type?: string; step?: number; micro?: { config?: unknown; loss?: unknown }[] };
      try {
        rec = JSON.parse(line);
      } catch {
        throw new Error(`${logPath}:${i + 1}: not valid JSON (a truncated training log? remove the last line)`);
      }
      if (rec.type !== 'step' || !Array.isArray(rec.micro)) return;
      const micro: { config: SubnetConfig; loss: number }[] = [];
      for (const m of rec.micro) {
        try {
          if (typeof m.loss !== 'number' || !Number.isFinite(m.loss)) throw new Error('no loss');
          micro.push({ config: validateSubnet(space, m.config, logPath), loss: m.loss });
        } catch {
          skipped++;
        }
      }
      steps.push({ step: rec.step ?? steps.length + 1, micro });
    });
  const entries = steps.reduce((s, x) => s + x.micro.length, 0);
  if (entries === 0) return { ...none, skipped };

  const count = new Map<string, { config: SubnetConfig; n: number; first: number }>();
  let order = 0;
  for (const s of steps)
    for (const m of s.micro) {
      const key = configKey(space, m.config);
      const c = count.get(key);
      if (c) c.n++;
      else count.set(key, { config: m.config, n: 1, first: order++ });
    }
  const top = [...count.values()].sort((a, b) => b.n - a.n || a.first - b.first)[0];
  const mostFrequent = top.n > 1 ? { name: 'most-frequent', config: top.config, note: `sampled ${top.n} of ${entries} times` } : null;

  const late = steps.length >= 2 ? steps.slice(Math.floor(steps.length / 2)) : steps;
  const loss = new Map<string, { config: SubnetConfig; sum: number; n: number; first: number }>();
  order = 0;
  for (const s of late)
    for (const m of s.micro) {
      const key = configKey(space, m.config);
      const c = loss.get(key);
      if (c) {
        c.sum += m.loss;
        c.n++;
      } else loss.set(key, { config: m.config, sum: m.loss, n: 1, first: order++ });
    }
  const lowestLoss = [...loss.values()]
    .sort((a, b) => a.sum / a.n - b.sum / b.n || a.first - b.first)
    .slice(0, k)
    .map((c, i) => ({
      name: `low-loss-${i + 1}`,
      config: c.config,
      note: `mean training loss ${(c.sum / c.n).toFixed(4)} over ${c.n} micro-batch${c.n > 1 ? 'es' : ''}`,
    }));
  return { mostFrequent, lowestLoss, entries, skipped };
}

/** Named candidates, then the training-log ones, without repeating a configuration (the first name wins). */
export function allCandidates(space: SearchSpace, logPath: string | null, k = 3): { candidates: Candidate[]; log: TrainLogCandidates } {
  const log = logPath ? trainLogCandidates(logPath, space, k) : { mostFrequent: null, lowestLoss: [], entries: 0, skipped: 0 };
  const out: Candidate[] = [];
  const seen = new Set<string>();
  for (const c of [...namedCandidates(space), ...(log.mostFrequent ? [log.mostFrequent] : []), ...log.lowestLoss]) {
    const key = configKey(space, c.config);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(c);
  }
  return { candidates: out, log };
}
