/** The options of the single-model tools: generate, perplexity, merge, inspect, doctor (src/cli/<name>.ts). */
import { z } from 'zod';
import { defineCommand, float, int, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';
import { computeOption } from './compute.ts';
import type { WeightDType } from '../models/llama/checkpoint.ts';

const subnetHelp = 'sub-network of an elastic adapter: maximal, heuristic, minimal or a JSON file';

/** `--dtype` of the commands that write a model (merge, extract): absent, the base's storage dtype is kept. */
export const WRITE_DTYPES = ['f32', 'bf16', 'f16'] as const;
export const dtypeOption = (what: string) =>
  option('--dtype <dtype>', `storage type of ${what} (default: the base model's, e.g. BF16 stays BF16)`, z.enum(WRITE_DTYPES).optional());

/** A `--dtype` value as a safetensors dtype (undefined: keep the base's). */
export function weightDtype(d: (typeof WRITE_DTYPES)[number] | undefined): WeightDType | undefined {
  return d && ({ f32: 'F32', bf16: 'BF16', f16: 'F16' } as const)[d];
}

export const generateSpec = defineCommand('generate', 'generate a continuation of a prompt (prints the continuation only)', {
  compute: computeOption(),
  model: option('--model <dir>', 'Hugging Face model directory (config.json, safetensors, tokenizer.json)', z.string()),
  adapter: option('--adapter <dir>', 'LoRA adapter directory (PEFT format) to apply', z.string().optional()),
  subnet: option('--subnet <spec>', subnetHelp, z.string().optional()),
  prompt: option('--prompt <text>', 'prompt text ("" starts from BOS alone)', z.string()),
  maxNewTokens: option('--max-new-tokens <n>', 'tokens to generate at most', int().default(128)),
  greedy: option('--greedy', 'greedy decoding (the default unless --temperature is given)', z.boolean().default(false)),
  temperature: option('--temperature <t>', 'sample with this temperature', float((n) => n > 0, '> 0').optional()),
  topP: option('--top-p <p>', 'nucleus sampling mass', float((n) => n > 0 && n <= 1, 'in (0, 1]').default(1)),
  seed: option('--seed <s>', 'random seed for sampling', int().default(0)),
  beams: option('--beams <k>', 'beam search with k beams', int(1).optional()),
  chat: option('--chat', "wrap the prompt as a user message with the model's chat template", z.boolean().default(false)),
});
export type GenerateOptions = OptionsOf<typeof generateSpec>;

export const perplexitySpec = defineCommand('perplexity', 'mean NLL per token and perplexity of a text (BOS prepended, no EOS)', {
  model: option('--model <dir>', 'Hugging Face model directory', z.string()),
  adapter: option('--adapter <dir>', 'LoRA adapter directory (PEFT format) to apply', z.string().optional()),
  subnet: option('--subnet <spec>', subnetHelp, z.string().optional()),
  text: option('--text <file>', 'UTF-8 text file to score', z.string()),
  json: option('--json', 'print {"tokens":..,"nll":..,"ppl":..}', z.boolean().default(false)),
});
export type PerplexityOptions = OptionsOf<typeof perplexitySpec>;

export const mergeSpec = defineCommand('merge', 'merge an adapter into its base model (SparsePEFT keeps the sparsity exactly)', {
  model: option('--model <dir>', 'base model directory', z.string()),
  adapter: option('--adapter <dir>', 'adapter directory', z.string()),
  subnet: option('--subnet <spec>', 'sub-network configuration: maximal, heuristic, minimal or a JSON file', z.string().default('maximal')),
  out: option('--out <dir>', 'output model directory', z.string()),
  dtype: dtypeOption("the merged float weights (with --dequantize, a GPTQ base's projections too)"),
  dequantize: option(
    '--dequantize',
    "GPTQ base: write the merged weights in float (--dtype) instead of requantising them onto the base's INT4 grid",
    z.boolean().default(false),
  ),
});
export type MergeOptions = OptionsOf<typeof mergeSpec>;

export const inspectSpec = defineCommand('inspect', 'per-layer sizes, dtype and parameter counts of a model directory (from its headers)', {
  model: option('--model <dir>', 'model directory', z.string()),
  sparsity: option(
    '--sparsity',
    'also count the zeros of every weight (reads the weights, one tensor at a time); without it only the headers are read',
    z.boolean().default(false),
  ),
  json: option('--json', 'print JSON', z.boolean().default(false)),
});
export type InspectOptions = OptionsOf<typeof inspectSpec>;

export const doctorSpec = defineCommand('doctor', 'report the kernel backend, OpenBLAS core type and thread count', {
  threads: option('--threads <n>', 'set the BLAS thread count before reporting', int(1).optional()),
  json: option('--json', 'print JSON', z.boolean().default(false)),
});
export type DoctorOptions = OptionsOf<typeof doctorSpec>;
