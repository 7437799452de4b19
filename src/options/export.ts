/** The options of `lonas export` (src/cli/export.ts): one command, a branch per format with its own flags. */
import { z } from 'zod';
import { GGUF_TYPES } from '../export/gguf/convert.ts';
import { defineCommand, option } from './schema.ts';
import type { OptionsOf } from './schema.ts';

export const EXPORT_FORMATS = ['gguf', 'onnx'] as const;

export const exportSpec = defineCommand(
  'export',
  'write a model (or a merged sub-network) for another runtime: gguf (llama.cpp, ollama), onnx (ONNX Runtime, transformers.js)',
  {
    format: option('--format <format>', 'output format', z.enum(EXPORT_FORMATS)),
    model: option('--model <dir>', 'model directory (Hugging Face layout, e.g. the output of lonas extract --merge)', z.string()),
    adapter: option('--adapter <dir>', 'elastic adapter whose sub-network --subnet is merged on the way', z.string().optional()),
    subnet: option(
      '--subnet <spec>',
      'with --adapter: maximal, heuristic, minimal, or a JSON file (default maximal)',
      z.string().optional(),
    ),
    type: option(
      '--type <type>',
      'gguf: storage type of the 2-D float tensors, default f32 (norms stay f32; GPTQ projections become q4_1)',
      z.enum(GGUF_TYPES).optional(),
    ),
    dtype: option('--dtype <dtype>', 'onnx: storage of float weights, default f32 (computation stays float32)', z.string().optional()),
    int4: option(
      '--int4',
      "onnx: a 4-bit GPTQ checkpoint's projections as com.microsoft MatMulNBits (exact, its own scales and zeros)",
      z.boolean().default(false),
    ),
    externalData: option(
      '--external-data <when>',
      'onnx: weights in model.onnx_data (auto: past the 2 GB protobuf limit)',
      z.enum(['auto', 'always', 'never']).default('auto'),
    ),
    out: option('--out <path>', 'output: a .gguf file, or a folder for onnx', z.string()),
  },
);
export type ExportOptions = OptionsOf<typeof exportSpec>;
