/** The options of `lonas sparsify` and `lonas quantize` (src/cli/sparsify.ts, src/cli/quantize.ts; recipe sections "sparsify", "quantize"). */
import { z } from 'zod';
import { GPTQ_BITS, GPTQ_BITS_TEXT } from '../io/gptq-format.ts';
import { targetsOption } from './finetune.ts';
import { defineCommand, float, int, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';

/** --dtype: how the float tensors of the written model are stored (GPTQ scales are always F16) */
export const OUTPUT_DTYPES = { f32: 'F32', bf16: 'BF16', f16: 'F16' } as const;

function dtypeOption() {
  return option(
    '--dtype <t>',
    "storage of the written float tensors, embeddings and norms included: f32, bf16 or f16 (default: the base model's)",
    z.enum(['f32', 'bf16', 'f16']).optional(),
  );
}

/** --sparsity when neither it nor --nm is given */
export const DEFAULT_SPARSITY = 0.5;

export const sparsifySpec = defineCommand('sparsify', 'prune a model with Wanda (calibrated) or magnitude; unstructured per row or N:M', {
  model: option('--model <dir>', 'Hugging Face model directory', z.string()),
  method: option('--method <m>', 'wanda or magnitude', z.enum(['wanda', 'magnitude']).default('wanda')),
  sparsity: option(
    '--sparsity <r>',
    `fraction of each row set to zero (default ${DEFAULT_SPARSITY}; not with --nm, whose pattern fixes it)`,
    float((n) => n > 0 && n < 1, 'in (0, 1)').optional(),
  ),
  nm: option(
    '--nm <N:M>',
    'semi-structured: keep N of every M consecutive inputs (e.g. 2:4)',
    z
      .string()
      .regex(/^\d+:\d+$/, 'must be N:M, e.g. 2:4')
      .optional(),
  ),
  calib: option('--calib <file>', 'calibration corpus: a text file or an instruction dataset (wanda)', z.string().optional()),
  nsamples: option('--nsamples <n>', 'calibration sequences', int(1).default(128)),
  seqlen: option('--seqlen <n>', 'tokens per calibration sequence (default: the model context)', int(2).optional()),
  targets: targetsOption('projections to prune'),
  seed: option('--seed <s>', 'calibration sampling seed', int().default(0)),
  dtype: dtypeOption(),
  out: option('--out <dir>', 'output model directory', z.string()),
});
export type SparsifyOptions = OptionsOf<typeof sparsifySpec>;

export const quantizeSpec = defineCommand('quantize', 'GPTQ quantisation (asymmetric, group-wise) into the AutoGPTQ checkpoint layout', {
  model: option('--model <dir>', 'Hugging Face model directory (a sparse model keeps its zeros exactly)', z.string()),
  method: option('--method <m>', 'gptq', z.literal('gptq').default('gptq')),
  bits: option(
    '--bits <b>',
    `bits per weight: ${GPTQ_BITS_TEXT}`,
    int(2)
      .refine((n) => GPTQ_BITS.includes(n), `must be ${GPTQ_BITS_TEXT}`)
      .default(4),
  ),
  groupSize: option(
    '--group-size <g>',
    'inputs per scale/zero group (-1: one group per row)',
    z
      .number()
      .int()
      .refine((n) => n === -1 || n >= 1, 'must be -1 or an integer ≥ 1')
      .default(128),
  ),
  actOrder: option('--act-order', 'quantise columns in descending Hessian-diagonal order (desc_act)', z.boolean().default(false)),
  damp: option(
    '--damp <p>',
    'dampening as a fraction of the mean Hessian diagonal',
    float((n) => n > 0 && n < 1, 'in (0, 1)').default(0.01),
  ),
  blockSize: option('--block-size <n>', 'columns per lazy-update block', int(1).default(128)),
  trueSequential: option(
    '--no-true-sequential',
    "quantise every projection of a layer on the float layer's inputs (two forward passes per layer) instead of AutoGPTQ's default true-sequential order (q/k/v, o, gate/up, down, each on the inputs the quantised ones before it produce; one pass)",
    z.boolean().default(true),
  ),
  calib: option('--calib <file>', 'calibration corpus: a text file or an instruction dataset', z.string()),
  nsamples: option('--nsamples <n>', 'calibration sequences', int(1).default(128)),
  seqlen: option('--seqlen <n>', 'tokens per calibration sequence (default: the model context)', int(2).optional()),
  targets: targetsOption('projections to quantise'),
  lmHead: option(
    '--lm-head',
    'also quantise the LM head, last, with the same settings (quantization_config "lm_head": true); a tied embedding keeps its float weights and the head is untied',
    z.boolean().default(false),
  ),
  seed: option('--seed <s>', 'calibration sampling seed', int().default(0)),
  dtype: dtypeOption(),
  out: option('--out <dir>', 'output model directory', z.string()),
});
export type QuantizeOptions = OptionsOf<typeof quantizeSpec>;
