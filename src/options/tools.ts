/** The options of the single-model tools: generate, perplexity, merge, inspect, doctor (src/cli/<name>.ts). */
import { z } from 'zod';
import { defineCommand, float, int, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';

const subnetHelp = 'sub-network of an elastic adapter: maximal, heuristic, minimal or a JSON file';

export const generateSpec = defineCommand('generate', 'generate a continuation of a prompt (prints the continuation only)', {
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
  dequantize: option(
    '--dequantize',
    "GPTQ base: write the merged weights in float (float32) instead of requantising them onto the base's INT4 grid",
    z.boolean().default(false),
  ),
});
export type MergeOptions = OptionsOf<typeof mergeSpec>;

export const inspectSpec = defineCommand('inspect', 'per-layer sizes, sparsity, dtype and parameter counts of a model directory', {
  model: option('--model <dir>', 'model directory', z.string()),
  json: option('--json', 'print JSON', z.boolean().default(false)),
});
export type InspectOptions = OptionsOf<typeof inspectSpec>;

export const doctorSpec = defineCommand('doctor', 'report the kernel backend, OpenBLAS core type and thread count', {
  threads: option('--threads <n>', 'set the BLAS thread count before reporting', int(1).optional()),
  json: option('--json', 'print JSON', z.boolean().default(false)),
});
export type DoctorOptions = OptionsOf<typeof doctorSpec>;
