/** The options of `lonas eval` and `lonas bench` (src/cli/eval.ts, src/cli/bench.ts; recipe sections "eval", "bench"). */
import { z } from 'zod';
import { defineCommand, int, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';
import { computeOption } from './compute.ts';
import { TASKS, availableTasks, defaultDataDir } from '../eval/tasks.ts';

/** --tasks help: the tasks that have data in the default data directory, never one without */
function tasksHelp(): string {
  const dir = defaultDataDir();
  const present = dir ? availableTasks(dir) : [];
  return present.length
    ? `comma-separated tasks; with data in ${dir}: ${present.join(',')}`
    : `comma-separated tasks (${TASKS.map((t) => t.name).join(',')}); no default data directory here, so pass --data-dir`;
}

const modelOptions = (modelHelp: string, adapterHelp: string) => ({
  compute: computeOption(),
  model: option('--model <dir>', modelHelp, z.string()),
  adapter: option('--adapter <dir>', adapterHelp, z.string().optional()),
  subnet: option('--subnet <spec>', 'sub-network of an elastic adapter: maximal, heuristic, minimal or a JSON file', z.string().optional()),
});

export const evalSpec = defineCommand(
  'eval',
  "accuracy on commonsense / math benchmarks (LLM-Adapters format), by generation (the papers' protocol) or log-likelihood",
  {
    ...modelOptions(
      'Hugging Face model directory (a base model or an extracted sub-network)',
      'LoRA adapter directory (PEFT format) to apply',
    ),
    tasks: option('--tasks <list>', tasksHelp(), z.string().optional()),
    data: option('--data <file>', 'one test file instead of --tasks (LLM-Adapters JSON or GSM8K JSONL)', z.string().optional()),
    answerType: option('--answer-type <type>', 'answer format of --data', z.enum(['auto', 'choice', 'number', 'letter']).default('auto')),
    dataDir: option(
      '--data-dir <dir>',
      'directory with <task>/test.json (default: $LONAS_ASSETS/datasets/llm-adapters/dataset, else ../shared/assets/datasets/llm-adapters/dataset, if it exists)',
      z.string().optional(),
    ),
    mode: option(
      '--mode <mode>',
      'generate: decode and extract the answer (papers); loglik: pick the most likely option',
      z.enum(['generate', 'loglik']).default('generate'),
    ),
    beams: option('--beams <k>', 'generate: beam search with k beams (the papers use 4; 1 = greedy)', int(1).default(1)),
    maxNewTokens: option('--max-new-tokens <n>', 'generate: token budget (default 32 for commonsense, 256 for math)', int(1).optional()),
    loglikTarget: option(
      '--loglik-target <t>',
      'loglik: score "the correct answer is <label>" (label) or the option text (text, per byte)',
      z.enum(['label', 'text']).default('label'),
    ),
    limit: option('--limit <n>', 'evaluate the first N examples of each task', int(1).optional()),
    sample: option('--sample', 'with --limit: a seeded random sample of N examples instead of the first N', z.boolean().default(false)),
    seed: option('--seed <s>', 'seed of --sample', int().default(0)),
    batchSize: option('--batch-size <b>', 'examples per batch (beam search runs one at a time)', int(1).default(8)),
    out: option('--out <file>', 'write the summary JSON here', z.string().optional()),
    predictions: option(
      '--predictions <file>',
      'write one JSON line per example here (prompt, output or option scores, answer, gold, correct)',
      z.string().optional(),
    ),
    json: option('--json', 'print the summary JSON on stdout instead of the table', z.boolean().default(false)),
  },
);
export type EvalOptions = OptionsOf<typeof evalSpec>;

export const benchSpec = defineCommand(
  'bench',
  'measure prefill and decode latency of a model (optionally an adapter sub-network) on this machine',
  {
    ...modelOptions(
      'model directory (a base model or an extracted sub-network)',
      'LoRA adapter directory to apply (e.g. <extracted>/adapter, or an elastic adapter)',
    ),
    merged: option(
      '--merged',
      'merge the adapter into the weights in memory first (as extract --merge ships it): count and time the merged model',
      z.boolean().default(false),
    ),
    refModel: option(
      '--ref-model <dir>',
      'reference to time against, interleaved run by run (A B A B …): speed-ups with their min–max',
      z.string().optional(),
    ),
    refAdapter: option('--ref-adapter <dir>', 'adapter of the reference (merged too with --merged)', z.string().optional()),
    refSubnet: option('--ref-subnet <spec>', 'sub-network of the reference adapter', z.string().optional()),
    promptLen: option('--prompt-len <n>', 'prompt tokens (prefill); also the sequence length of the MAC count', int(1).default(256)),
    genLen: option('--gen-len <n>', 'decoded tokens', int(1).default(32)),
    repeats: option('--repeats <n>', 'timed repeats (median and min–max are reported)', int(1).default(5)),
    warmup: option('--warmup <n>', 'untimed warm-up runs', int().default(1)),
    json: option('--json', 'print one JSON object', z.boolean().default(false)),
    out: option('--out <file>', 'also write the JSON object to this file', z.string().optional()),
  },
);
export type BenchOptions = OptionsOf<typeof benchSpec>;
