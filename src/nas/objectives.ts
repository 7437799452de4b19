/**
 * The two objectives of a sub-network search over a SuperNet: the validation score (loss over the
 * validation tokens, or accuracy through the evaluation harness) and the cost (parameters and MACs of the
 * configuration, optionally the measured latency of the configuration extracted and merged in memory). Each
 * score carries a cache key (src/nas/search.ts refuses an evaluations.jsonl written under another one).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ADAPTER_WEIGHTS } from '../adapters/peft.ts';
import { makeBatches, tokenizeExample } from '../io/datasets.ts';
import type { Example } from '../io/datasets.ts';
import type { LonasTokenizer } from '../io/tokenizer.ts';
import { validationLoss } from './validation-loss.ts';
import { modelBackend } from '../eval/backend.ts';
import { runEval } from '../eval/harness.ts';
import type { TaskData } from '../eval/tasks.ts';
import { measureLatency } from './cost.ts';
import type { CostDefinition } from './cost.ts';
import { useSparseKernels } from './load.ts';
import type { CostObjective, CostRecord, Score } from './search.ts';
import type { SubnetConfig } from './subnet.ts';
import type { SuperNet } from './supernet.ts';

/** What a score depends on beyond the validation tokens: the model (config + weight sizes) and the adapter weights. */
export function modelFingerprint(modelDir: string, adapterDir: string): string {
  const h = createHash('sha256');
  h.update(resolve(modelDir));
  h.update(readFileSync(join(modelDir, 'config.json')));
  for (const f of readdirSync(modelDir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort())
    h.update(`${f}:${statSync(join(modelDir, f)).size}`);
  h.update(readFileSync(join(adapterDir, ADAPTER_WEIGHTS)));
  return h.digest('hex');
}

export interface LossScoreOptions {
  cutoffLen: number;
  trainOnInputs: boolean;
  batchSize: number;
}

/** Token-weighted mean validation loss (lower is better), dropout off. */
export function lossScore(net: SuperNet, tok: LonasTokenizer, examples: Example[], o: LossScoreOptions, fingerprint: string): Score {
  const tokens = examples.map((e) => tokenizeExample(tok, e, { cutoffLen: o.cutoffLen, trainOnInputs: o.trainOnInputs }));
  const batches = makeBatches(tokens, o.batchSize, { padId: tok.padId ?? 0, seed: 0, shuffle: false });
  if (batches.every((b) => b.lossTokens === 0))
    throw new Error('the validation examples have no target tokens (prompts longer than --cutoff-len?)');
  const key = createHash('sha256')
    .update(JSON.stringify({ mode: 'loss', fingerprint, tokens }))
    .digest('hex');
  return {
    name: 'loss',
    key,
    evaluate: (config: SubnetConfig) => net.with(config, () => validationLoss(net.model, net.loras, net.space, config, batches)),
  };
}

/** Accuracy over all examples of `tasks` through the evaluation harness (src/eval), the configuration active. */
export function accuracyScore(
  net: SuperNet,
  tok: LonasTokenizer,
  tasks: TaskData[],
  o: { mode: 'loglik' | 'generate'; batchSize: number },
  fingerprint: string,
): Score {
  if (o.mode === 'loglik') {
    const bad = tasks.filter((t) => t.answer.type !== 'choice');
    if (bad.length)
      throw new Error(
        `--mode loglik scores multiple-choice options; the validation data has ${bad.map((t) => t.answer.type).join(', ')} answers: use --mode generate`,
      );
  }
  const backend = modelBackend(net.model, tok);
  const opts = { mode: o.mode, batchSize: o.batchSize } as const;
  const key = createHash('sha256')
    .update(JSON.stringify({ mode: o.mode, fingerprint, tasks: tasks.map((t) => [t.name, t.answer, t.maxNewTokens, t.examples]) }))
    .digest('hex');
  return {
    name: 'accuracy',
    key,
    evaluate: (config: SubnetConfig) =>
      net.with(config, async () => {
        const r = await runEval(backend, tasks, opts);
        const n = r.tasks.reduce((a, t) => a + t.count, 0);
        return n ? r.tasks.reduce((a, t) => a + t.correct, 0) / n : 0;
      }),
  };
}

export interface LatencyOptions {
  promptLen: number;
  genLen: number;
  repeats: number;
}

/**
 * The cost of a configuration: parameters and MACs under the cost definition `d` (merged: what extract --merge
 * ships, so adapter ranks that vanish in the merge are not rewarded), plus — when asked — the latency of a
 * prefill of `promptLen` tokens and `genLen` decoded ones, timed on what a user ships: the configuration
 * extracted and merged (no adapter matmuls, no strided views), fastest of `repeats` runs (interference only
 * ever adds time). The prompt is shortened to leave room for the decoded tokens in the model's positions.
 */
export function searchCost(
  net: SuperNet,
  objective: CostObjective,
  d: CostDefinition,
  latency: LatencyOptions,
): (config: SubnetConfig, withLatency: boolean) => CostRecord {
  const maxPositions = net.model.config.maxPositions;
  const opts = {
    promptLen: Math.min(latency.promptLen, maxPositions - latency.genLen),
    genLen: latency.genLen,
    repeats: latency.repeats,
    warmup: 1,
  };
  if (objective === 'latency' && opts.promptLen < 1)
    throw new Error(`--latency-gen-len ${latency.genLen} leaves no room for a prompt in ${maxPositions} positions`);
  let warm = false;
  return (config, withLatency) => {
    const { params, macs } = net.cost(config, d);
    const c: CostRecord = { params: params.total, macs };
    if (withLatency) {
      const shipped = net.extract(config);
      useSparseKernels(shipped);
      if (!warm) {
        measureLatency(shipped, { ...opts, repeats: 1 });
        warm = true;
      } // the first timings of a process run slow
      const l = measureLatency(shipped, opts);
      c.latencyMs = l.prefillMs.min + opts.genLen * l.decodeMsPerToken.min;
    }
    return c;
  };
}
