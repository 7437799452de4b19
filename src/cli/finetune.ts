/** `lonas finetune`: train an elastic LoRA super-network (or plain LoRA with --space none) on instruction data. */
import { Command, Option } from 'commander';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadLlama } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { loadTrainingMix, makeBatches, splitValidation, tokenizeExample } from '../io/datasets.ts';
import type { MixSpec } from '../io/datasets.ts';
import { addLora, parseTargets, saveAdapter } from '../adapters/peft.ts';
import { enableQuantAware, enableSparsePeft } from '../adapters/sqft.ts';
import { loadSearchSpaceSpec, resolveSearchSpace } from '../nas/search-space.ts';
import type { SearchSpace } from '../nas/search-space.ts';
import { REORDER_MODES, reorderByImportance } from '../nas/importance.ts';
import type { ReorderMode } from '../nas/importance.ts';
import { permuteMlpChannels, validateChannelOrder } from '../nas/channel-order.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import type { TokenizedExample } from '../io/datasets.ts';
import { writeJsonAtomic } from '../io/files.ts';
import { train } from '../train/trainer.ts';
import { floatOption, intOption } from './options.ts';
import { ProgressReporter } from './progress.ts';
import { world } from '../dist/mpi.ts';
import { checkBatchSplit } from '../dist/data-parallel.ts';

interface FinetuneOptions {
  model: string; data: string; out: string; space: string; rank: number; alpha: number; dropout: number; targets: string;
  epochs: number; steps?: number; batchSize: number; gradAccum: number; lr: number; warmup: number; weightDecay: number;
  maxGradNorm: number; cutoffLen: number; valSize: number; seed: number; trainOnInputs: boolean; sandwich?: boolean;
  checkpointEvery: number; evalEvery: number; groupByLength?: boolean; resume?: boolean; sparseAdapter?: boolean; quantizationAware?: boolean;
  reorderChannels?: ReorderMode;
}

/** The order chosen at the start of a run, reused by --resume (the checkpoint's adapters live in that order). */
export const CHANNEL_ORDER_FILE = 'mlp_channel_order.json';
/** training examples that calibrate --reorder-channels activation */
export const REORDER_CALIB_EXAMPLES = 32;

/** "a.json:1000,b.jsonl" → files with optional sample counts. */
export function parseDataSpecs(list: string): MixSpec[] {
  return list.split(',').filter(Boolean).map((item) => {
    const m = item.match(/^(.*):(\d+)$/);
    return m ? { file: m[1], count: Number(m[2]) } : { file: item };
  });
}

export function finetuneCommand(): Command {
  return new Command('finetune')
    .description('fine-tune LoRA adapters on a frozen base, with an elastic search space (LoNAS / NLS)')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .requiredOption('--data <files>', 'training files, comma-separated; FILE:N takes N examples of FILE (seeded)')
    .requiredOption('--out <dir>', 'output directory (adapter, train_log.jsonl, checkpoint/)')
    .option('--space <name|file>', 'search space: lonas, nls, none (plain LoRA) or a JSON file', 'lonas')
    .option('--rank <r>', 'maximal LoRA rank', intOption('--rank', 1), 32)
    .option('--alpha <a>', 'LoRA alpha (scaling alpha / rank)', floatOption('--alpha', (n) => n > 0, '> 0'), 64)
    .option('--dropout <p>', 'LoRA dropout', floatOption('--dropout', (n) => n >= 0 && n < 1, 'in [0, 1)'), 0.1)
    .option('--targets <list>', 'modules with adapters', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj')
    .option('--epochs <e>', 'epochs over the training data', intOption('--epochs', 1), 3)
    .option('--steps <n>', 'optimizer steps (overrides --epochs)', intOption('--steps', 1))
    .option('--batch-size <b>', 'examples per micro-batch', intOption('--batch-size', 1), 4)
    .option('--grad-accum <k>', 'micro-batches per optimizer step', intOption('--grad-accum', 1), 4)
    .option('--lr <lr>', 'peak learning rate (cosine decay)', floatOption('--lr', (n) => n > 0, '> 0'), 3e-4)
    .option('--warmup <w>', 'warm-up steps', intOption('--warmup'), 0)
    .option('--weight-decay <wd>', 'AdamW weight decay', floatOption('--weight-decay', (n) => n >= 0, '≥ 0'), 0)
    .option('--max-grad-norm <n>', 'gradient clipping (0: off)', floatOption('--max-grad-norm', (n) => n >= 0, '≥ 0'), 1)
    .option('--cutoff-len <n>', 'maximum tokens per example', intOption('--cutoff-len', 8), 256)
    .option('--val-size <n>', 'hold out N training examples for validation loss', intOption('--val-size'), 0)
    .option('--seed <s>', 'seed for data order, initialisation, dropout and sub-network sampling', intOption('--seed'), 42)
    .option('--no-train-on-inputs', 'loss on the response only (default: prompt and response)')
    .option('--sandwich', 'train maximal + minimal + a sampled sub-network on every micro-batch')
    .option('--sparse-adapter', "SparsePEFT: mask the adapter by the base's non-zeros so merging keeps the sparsity")
    .option('--quantization-aware', 'QA-SparsePEFT on a GPTQ base: train through its INT4 quantiser so the merge stays INT4 (needs --dropout 0)')
    .addOption(new Option('--reorder-channels [score]', 'before training, put each layer\'s most important MLP channels first, so narrower MLP widths keep them: ' +
      `magnitude (weight norms, the default score) or activation (${REORDER_CALIB_EXAMPLES} training examples); the base on disk is unchanged`).choices(REORDER_MODES).preset('magnitude'))
    .option('--group-by-length', 'batch examples of similar length together (less padding)')
    .option('--checkpoint-every <n>', 'save a resumable checkpoint every N steps (0: at the end only)', intOption('--checkpoint-every'), 50)
    .option('--eval-every <n>', 'validation loss every N steps (0: at the end only)', intOption('--eval-every'), 0)
    .option('--resume', 'continue from the checkpoint in --out (bit-identical to an uninterrupted run)')
    .action((o: FinetuneOptions) => runFinetune(o));
}

function runFinetune(o: FinetuneOptions): void {
  const ranks = world(); // under mpirun: data-parallel over the ranks, rank 0 writes every output
  checkBatchSplit(o.batchSize, ranks);
  const log = (s: string) => { if (ranks.rank === 0) process.stderr.write(`${s}\n`); };
  const tok = loadTokenizer(o.model);
  const model = loadLlama(o.model);
  const lora = { rank: o.rank, alpha: o.alpha, dropout: o.dropout, targets: parseTargets(o.targets) };
  const spaceSpec = loadSearchSpaceSpec(o.space);
  const space = resolveSearchSpace(spaceSpec, model.config, o.rank, lora.targets);
  const specs = parseDataSpecs(o.data);
  const mix = loadTrainingMix(specs, o.seed);
  const { train: trainSet, val } = o.valSize > 0 ? splitValidation(mix, o.valSize, o.seed) : { train: mix, val: [] };
  const tokenize = (e: (typeof mix)[number]) => tokenizeExample(tok, e, { cutoffLen: o.cutoffLen, trainOnInputs: o.trainOnInputs });
  const trainTok = trainSet.map(tokenize), valTok = val.map(tokenize);
  const padId = tok.padId ?? 0;
  if (o.reorderChannels) reorderChannels(model, space, o, trainTok, log); // before the adapters exist
  const loras = addLora(model, lora, o.seed);
  if (o.sparseAdapter || o.quantizationAware) log(`SparsePEFT: adapters masked by the base's non-zeros (${(100 * enableSparsePeft(loras)).toFixed(1)}% of the adapted weights are zero)`);
  if (o.quantizationAware) {
    if (!model.config.quantization) throw new Error(`--quantization-aware needs a GPTQ-quantised base (${o.model} has no quantization_config; run \`lonas quantize\` first)`);
    enableQuantAware(loras);
  }
  log(`lonas finetune: ${trainTok.length} training / ${valTok.length} validation examples, ${loras.length} adapters (r ${o.rank}), ` +
    `search space "${o.space}" with ${space.groups.length} groups, ${trainTok.reduce((s, e) => s + e.inputIds.length, 0)} training tokens per epoch`);
  const progress = new ProgressReporter('finetune');
  const result = train(model, loras, space,
    (epoch) => makeBatches(trainTok, o.batchSize, { padId, seed: o.seed + epoch, shuffle: true, groupByLength: o.groupByLength }),
    valTok.length ? makeBatches(valTok, o.batchSize, { padId, seed: o.seed, shuffle: false }) : [],
    {
      outDir: o.out, steps: o.steps, epochs: o.epochs, gradAccum: o.gradAccum, lr: o.lr, warmup: o.warmup, weightDecay: o.weightDecay,
      maxGradNorm: o.maxGradNorm, seed: o.seed, checkpointEvery: o.checkpointEvery, evalEvery: o.evalEvery, sandwich: !!o.sandwich, resume: !!o.resume,
      settingsKey: JSON.stringify({ model: resolve(o.model), data: o.data, lora, space: spaceSpec, cutoff: o.cutoffLen, trainOnInputs: o.trainOnInputs, sparse: !!o.sparseAdapter, qa: !!o.quantizationAware, batch: o.batchSize, valSize: o.valSize, groupByLength: !!o.groupByLength, ...(o.reorderChannels ? { reorder: o.reorderChannels } : {}) }),
    },
    (e) => progress.event(e), ranks);
  progress.stop();
  if (ranks.rank !== 0) return;
  saveAdapter(o.out, model, lora, { baseModel: resolve(o.model), searchSpace: spaceSpec, mode: o.quantizationAware ? 'qa' : o.sparseAdapter ? 'sparse' : 'lora' });
  writeJsonAtomic(join(o.out, 'run_config.json'), { command: 'finetune', options: o, world_size: ranks.size, result, node: process.version });
  log(`done: ${result.steps} steps, final loss ${result.finalLoss.toFixed(4)}${result.valLoss !== null ? `, validation loss ${result.valLoss.toFixed(4)}` : ''}, ` +
    `${Math.round(result.tokensSeen / Math.max(result.seconds, 1e-9))} tokens/s; adapter written to ${o.out}`);
}

/**
 * --reorder-channels: permutes the in-memory base's MLP channels by importance (src/nas/importance.ts) and
 * records the order in --out; a resumed run re-applies the recorded order. saveAdapter later writes the
 * adapter in the base's own order plus the order (PEFT-compatible).
 */
function reorderChannels(model: LlamaModel, space: SearchSpace, o: FinetuneOptions, trainTok: TokenizedExample[], log: (s: string) => void): void {
  const mode = o.reorderChannels!;
  if (model.config.quantization) throw new Error(`--reorder-channels: ${o.model} is GPTQ-quantised; reordering the channels of a quantised base is not supported`);
  if (!space.groups.some((g) => g.kind === 'mlp_width')) {
    log(`--reorder-channels: search space "${o.space}" has no mlp_width group, so no MLP channel is ever sliced away; channels left in place`);
    return;
  }
  const file = join(o.out, CHANNEL_ORDER_FILE);
  if (o.resume && existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { mode?: string; mlp_channel_order?: unknown };
    if (saved.mode !== mode) throw new Error(`--resume: ${file} was written with --reorder-channels ${saved.mode}, this run asks for ${mode}`);
    permuteMlpChannels(model, validateChannelOrder(saved.mlp_channel_order, model.config, `${file}: field "mlp_channel_order"`));
    log(`MLP channels reordered as recorded in ${file}`);
    return;
  }
  const started = Date.now();
  const samples = mode === 'activation' ? trainTok.slice(0, REORDER_CALIB_EXAMPLES).map((e) => Int32Array.from(e.inputIds)) : [];
  const order = reorderByImportance(model, mode, samples);
  if (world().rank === 0) {
    mkdirSync(o.out, { recursive: true });
    writeJsonAtomic(file, { mode, mlp_channel_order: order });
  }
  const moved = order.reduce((n, p) => n + p.filter((c, k) => c !== k).length, 0), total = order.reduce((n, p) => n + p.length, 0);
  log(`MLP channels reordered by ${mode} importance${mode === 'activation' ? ` (${samples.length} training examples)` : ''}: ${moved} of ${total} channels moved, ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
