/** The options of `lonas search` and `lonas extract` (src/cli/search.ts, src/cli/extract.ts; recipe sections "search", "extract"). */
import { z } from 'zod';
import { defineCommand, float, int, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';
import { dtypeOption } from './tools.ts';

export const SEARCH_MODES = ['loss', 'loglik', 'generate'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

export const searchSpec = defineCommand(
  'search',
  'search the sub-networks of an elastic adapter for the accuracy/cost Pareto front (candidates + NSGA-II)',
  {
    model: option('--model <dir>', 'base model directory', z.string()),
    adapter: option('--adapter <dir>', 'elastic adapter directory (from lonas finetune)', z.string()),
    out: option(
      '--out <dir>',
      'output directory (evaluations.jsonl cache, search_progression.csv, pareto.json/.svg, best.json)',
      z.string(),
    ),
    val: option('--val <file>', 'validation data file (LLM-Adapters JSON or GSM8K JSONL)', z.string().optional()),
    valSize: option(
      '--val-size <n>',
      "validation examples from the adapter's held-out training split (run_config.json), or held out of --data",
      int(1).optional(),
    ),
    data: option(
      '--data <files>',
      'training data to hold --val-size examples out of, when the adapter has no run_config.json (FILE:N as in finetune)',
      z.string().optional(),
    ),
    limit: option('--limit <n>', 'use at most N validation examples', int(1).optional()),
    evals: option('--evals <n>', 'NSGA-II evaluation budget (the candidates come on top)', int(1).default(200)),
    population: option('--population <n>', 'NSGA-II population size', int(2).default(8)),
    objective: option(
      '--objective <cost>',
      'cost objective: MACs for 1×--cost-seq-len tokens, parameters, or measured latency (of the configuration extracted and merged in memory)',
      z.enum(['macs', 'params', 'latency']).default('macs'),
    ),
    costSeqLen: option(
      '--cost-seq-len <n>',
      'sequence length of the MAC count (recorded in best.json and pareto.json)',
      int(1).default(256),
    ),
    merged: option(
      '--merged',
      'count parameters and MACs of the configuration merged, as extract --merge ships it (adapter ranks then cost nothing); default: adapter unmerged',
      z.boolean().default(false),
    ),
    mode: option(
      '--mode <mode>',
      'validation score: loss (lower is better), or accuracy by loglik or generate (as lonas eval)',
      z.enum(SEARCH_MODES).default('loss'),
    ),
    refAcc: option(
      '--ref-acc <a>',
      "reference score (an accuracy; a loss with --mode loss); default: the maximal sub-network's",
      float(Number.isFinite, 'a number').optional(),
    ),
    delta: option(
      '--delta <d>',
      'best = fewest cost with accuracy > ref − delta (loss < ref + delta); default 0.01 (loss: 0.05)',
      float((n) => n >= 0, '≥ 0').optional(),
    ),
    seed: option('--seed <s>', 'NSGA-II seed', int().default(0)),
    candidates: option(
      '--no-candidates',
      'skip the cheap candidates (heuristic, minimal, training-log ones); maximal is still evaluated for the reference',
      z.boolean().default(true),
    ),
    topK: option('--top-k <k>', 'lowest-training-loss configurations to try as candidates', int().default(3)),
    cutoffLen: option('--cutoff-len <n>', 'maximum tokens per validation example (default: as in training, else 256)', int(8).optional()),
    batchSize: option('--batch-size <b>', 'validation examples per forward pass', int(1).default(8)),
    latencyPromptLen: option('--latency-prompt-len <n>', 'latency objective: prompt tokens', int(1).default(64)),
    latencyGenLen: option('--latency-gen-len <n>', 'latency objective: decoded tokens', int(0).default(16)),
    latencyRepeats: option('--latency-repeats <n>', 'latency objective: timed repeats (the fastest counts)', int(1).default(3)),
  },
);
export type SearchOptions = OptionsOf<typeof searchSpec>;

export const extractSpec = defineCommand(
  'extract',
  'write a sub-network as a self-contained smaller model (merged, or sliced base + sliced adapter)',
  {
    model: option('--model <dir>', 'base model directory', z.string()),
    adapter: option('--adapter <dir>', 'elastic adapter directory', z.string()),
    subnet: option(
      '--subnet <spec>',
      'maximal, heuristic, minimal, or a JSON file (a configuration or a search result such as best.json)',
      z.string(),
    ),
    merge: option(
      '--merge',
      'fold the adapter into the weights (default: write the sliced adapter to <out>/adapter)',
      z.boolean().default(false),
    ),
    out: option('--out <dir>', 'output model directory', z.string()),
    dtype: dtypeOption("the float weights (with --dequantize, a GPTQ base's projections too; the unmerged adapter stays f32)"),
    dequantize: option(
      '--dequantize',
      "GPTQ base: write the weights in float (--dtype) instead of requantising them onto the base's INT4 grid",
      z.boolean().default(false),
    ),
  },
);
export type ExtractOptions = OptionsOf<typeof extractSpec>;
