/**
 * `lonas search`: find the accuracy/cost Pareto front of an elastic adapter's sub-networks (cheap candidates,
 * then NSGA-II), and choose the fewest-cost one within `--delta` of the reference. See src/nas/search-adapter.ts.
 */
import { Command, Option } from 'commander';
import { searchAdapter } from '../nas/search-adapter.ts';
import type { SearchMode } from '../nas/search-adapter.ts';
import type { CostObjective } from '../nas/search.ts';
import { floatOption, intOption } from './options.ts';
import { SearchBar } from './progress.ts';

interface SearchCliOptions {
  model: string; adapter: string; out: string;
  val?: string; valSize?: number; data?: string; limit?: number;
  evals: number; population: number; objective: CostObjective; mode: SearchMode;
  refAcc?: number; delta?: number; seed: number; candidates: boolean; topK: number;
  cutoffLen?: number; batchSize: number; latencyPromptLen: number; latencyGenLen: number; latencyRepeats: number;
}

export function searchCommand(): Command {
  return new Command('search')
    .description('search the sub-networks of an elastic adapter for the accuracy/cost Pareto front (candidates + NSGA-II)')
    .requiredOption('--model <dir>', 'base model directory')
    .requiredOption('--adapter <dir>', 'elastic adapter directory (from lonas finetune)')
    .requiredOption('--out <dir>', 'output directory (evaluations.jsonl cache, search_progression.csv, pareto.json/.svg, best.json)')
    .option('--val <file>', 'validation data file (LLM-Adapters JSON or GSM8K JSONL)')
    .option('--val-size <n>', "validation examples from the adapter's held-out training split (run_config.json), or held out of --data", intOption('--val-size', 1))
    .option('--data <files>', 'training data to hold --val-size examples out of, when the adapter has no run_config.json (FILE:N as in finetune)')
    .option('--limit <n>', 'use at most N validation examples', intOption('--limit', 1))
    .option('--evals <n>', 'NSGA-II evaluation budget (the candidates come on top)', intOption('--evals', 1), 200)
    .option('--population <n>', 'NSGA-II population size', intOption('--population', 2), 8)
    .addOption(new Option('--objective <cost>', 'cost objective: MACs for 1×256 tokens, parameters, or measured latency (of the configuration extracted and merged in memory)').choices(['macs', 'params', 'latency']).default('macs'))
    .addOption(new Option('--mode <mode>', 'validation score: loss (lower is better), or accuracy by loglik or generate (as lonas eval)').choices(['loss', 'loglik', 'generate']).default('loss'))
    .option('--ref-acc <a>', "reference score (an accuracy; a loss with --mode loss); default: the maximal sub-network's", floatOption('--ref-acc', Number.isFinite, 'a number'))
    .option('--delta <d>', 'best = fewest cost with accuracy > ref − delta (loss < ref + delta); default 0.01 (loss: 0.05)', floatOption('--delta', (n) => n >= 0, '≥ 0'))
    .option('--seed <s>', 'NSGA-II seed', intOption('--seed'), 0)
    .option('--no-candidates', 'skip the cheap candidates (heuristic, minimal, training-log ones); maximal is still evaluated for the reference')
    .option('--top-k <k>', 'lowest-training-loss configurations to try as candidates', intOption('--top-k'), 3)
    .option('--cutoff-len <n>', 'maximum tokens per validation example (default: as in training, else 256)', intOption('--cutoff-len', 8))
    .option('--batch-size <b>', 'validation examples per forward pass', intOption('--batch-size', 1), 8)
    .option('--latency-prompt-len <n>', 'latency objective: prompt tokens', intOption('--latency-prompt-len', 1), 64)
    .option('--latency-gen-len <n>', 'latency objective: decoded tokens', intOption('--latency-gen-len', 0), 16)
    .option('--latency-repeats <n>', 'latency objective: timed repeats (the fastest counts)', intOption('--latency-repeats', 1), 3)
    .action((o: SearchCliOptions) => runSearchCli(o));
}

async function runSearchCli(o: SearchCliOptions): Promise<void> {
  const bar = new SearchBar();
  const { summary } = await searchAdapter(o, {
    log: (line) => process.stderr.write(`${line}\n`),
    onProgress: (p, scoreName) => bar.update(p, scoreName),
    onSearchEnd: () => bar.stop(),
  });
  process.stdout.write(summary);
}
