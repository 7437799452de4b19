/** The options of `lonas finetune` (src/cli/finetune.ts runs them; the recipe's "finetune" section is derived from them). */
import { z } from 'zod';
import { PROJECTIONS } from '../models/llama/model.ts';
import { REORDER_MODES } from '../nas/importance.ts';
import { CHECKPOINTING_MODES } from '../train/memory.ts';
import { defineCommand, float, int, list, option } from './schema.ts';
import type { OptionsInput, OptionsOf } from './schema.ts';
import { computeOption } from './compute.ts';

/** training examples that calibrate --reorder-channels activation */
export const REORDER_CALIB_EXAMPLES = 32;

const projection = z.enum(PROJECTIONS, { errorMap: () => ({ message: `must be one of ${PROJECTIONS.join(', ')}` }) });
/** the projections lonas adapts or compresses by default: all of them */
export const targetsOption = (help: string) => option('--targets <list>', help, list(projection).default([...PROJECTIONS]));

export const finetuneSpec = defineCommand(
  'finetune',
  'fine-tune LoRA adapters on a frozen base, with an elastic search space (LoNAS / NLS)',
  {
    model: option('--model <dir>', 'Hugging Face model directory', z.string()),
    data: option('--data <files>', 'training files, comma-separated; FILE:N takes N examples of FILE (seeded)', z.string()),
    out: option('--out <dir>', 'output directory (adapter, train_log.jsonl, checkpoint/)', z.string()),
    compute: computeOption(),
    space: option('--space <name|file>', 'search space: lonas, nls, none (plain LoRA) or a JSON file', z.string().default('lonas')),
    rank: option('--rank <r>', 'maximal LoRA rank', int(1).default(32)),
    alpha: option('--alpha <a>', 'LoRA alpha (scaling alpha / rank)', float((n) => n > 0, '> 0').default(64)),
    dropout: option('--dropout <p>', 'LoRA dropout', float((n) => n >= 0 && n < 1, 'in [0, 1)').default(0.1)),
    targets: targetsOption('modules with adapters'),
    epochs: option('--epochs <e>', 'epochs over the training data', int(1).default(3)),
    steps: option('--steps <n>', 'optimizer steps (overrides --epochs)', int(1).optional()),
    batchSize: option('--batch-size <b>', 'examples per micro-batch', int(1).default(4)),
    gradAccum: option('--grad-accum <k>', 'micro-batches per optimizer step', int(1).default(4)),
    lr: option('--lr <lr>', 'peak learning rate (cosine decay)', float((n) => n > 0, '> 0').default(3e-4)),
    warmup: option('--warmup <w>', 'warm-up steps', int().default(0)),
    weightDecay: option('--weight-decay <wd>', 'AdamW weight decay', float((n) => n >= 0, '≥ 0').default(0)),
    maxGradNorm: option('--max-grad-norm <n>', 'gradient clipping (0: off)', float((n) => n >= 0, '≥ 0').default(1)),
    cutoffLen: option('--cutoff-len <n>', 'maximum tokens per example', int(8).default(256)),
    valSize: option('--val-size <n>', 'hold out N training examples for validation loss', int().default(0)),
    seed: option('--seed <s>', 'seed for data order, initialisation, dropout and sub-network sampling', int().default(42)),
    trainOnInputs: option('--no-train-on-inputs', 'loss on the response only (default: prompt and response)', z.boolean().default(true)),
    sandwich: option('--sandwich', 'train maximal + minimal + a sampled sub-network on every micro-batch', z.boolean().default(false)),
    sparseAdapter: option(
      '--sparse-adapter',
      "SparsePEFT: mask the adapter by the base's non-zeros so merging keeps the sparsity",
      z.boolean().default(false),
    ),
    quantizationAware: option(
      '--quantization-aware',
      'QA-SparsePEFT on a GPTQ base: train through its INT4 quantiser so the merge stays INT4 (needs --dropout 0)',
      z.boolean().default(false),
    ),
    reorderChannels: option(
      '--reorder-channels [score]',
      "before training, put each layer's most important MLP channels first, so narrower MLP widths keep them: " +
        `magnitude (weight norms, the default score) or activation (${REORDER_CALIB_EXAMPLES} training examples); the base on disk is unchanged`,
      z.enum(REORDER_MODES).optional(),
      { preset: 'magnitude' },
    ),
    gradientCheckpointing: option(
      '--gradient-checkpointing [when]',
      'activation checkpointing per decoder layer (each layer recomputed in backward: the same gradients, one more forward, ' +
        'far less memory): on (the bare flag), off, or auto, on only when the memory estimate says the run does not fit without it',
      z.enum(CHECKPOINTING_MODES).default('auto'),
      { preset: 'on' },
    ),
    memoryLimit: option(
      '--memory-limit <GiB>',
      'refuse to start when the estimated peak memory exceeds this many GiB (default: the memory available when training starts)',
      float((n) => n > 0, '> 0').optional(),
    ),
    groupByLength: option('--group-by-length', 'batch examples of similar length together (less padding)', z.boolean().default(false)),
    checkpointEvery: option('--checkpoint-every <n>', 'save a resumable checkpoint every N steps (0: at the end only)', int().default(50)),
    evalEvery: option('--eval-every <n>', 'validation loss every N steps (0: at the end only)', int().default(0)),
    resume: option('--resume', 'continue from the checkpoint in --out (bit-identical to an uninterrupted run)', z.boolean().default(false)),
    overwrite: option(
      '--overwrite',
      'discard the checkpoint in --out and train from the start (without it, a checkpoint there is refused)',
      z.boolean().default(false),
    ),
  },
);
export type FinetuneOptions = OptionsOf<typeof finetuneSpec>;
export type FinetuneInput = OptionsInput<typeof finetuneSpec>;
