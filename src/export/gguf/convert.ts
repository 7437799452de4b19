/**
 * Hugging Face model directory → GGUF file that llama.cpp runs (what llama.cpp's convert_hf_to_gguf.py does,
 * for the Llama family lonas trains). The directory is exactly what `lonas extract --merge` writes:
 * config.json (with `lonas_layers` when layers differ), safetensors weights (float, or GPTQ INT4 tensors
 * with `quantization_config`), tokenizer.json / tokenizer_config.json.
 *
 * Architectures: Llama and Mistral with equal layers → `llama`; with per-layer sizes → `deci`, llama.cpp's
 * Llama variant whose MLP width and head counts are read per layer (Nemotron-NAS models; the graph is
 * llama's). The `llama` graph of llama.cpp reads those per-layer arrays but builds every layer at layer 0's
 * size, so it cannot run them. Qwen2 → `qwen2`, equal layers only (its graph has the same limitation and
 * no per-layer variant).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { hfFamily, parseHfConfig } from '../../models/llama/hf-config.ts';
import type { LlamaConfig } from '../../models/llama/config.ts';
import { openWeights } from '../../io/hf-dir.ts';
import { storedNames } from '../../models/llama/checkpoint.ts';
import { planTensors } from './tensors.ts';
import type { TensorNote } from './tensors.ts';
import { tokenizerMetadata } from './vocab.ts';
import { f32, GGUF_ALIGNMENT, str, u32, writeGguf } from './writer.ts';
import type { GgmlType, GgufTensor, GgufValue } from './writer.ts';

export const GGUF_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'] as const;
export type GgufOutType = (typeof GGUF_TYPES)[number];

/** llama.cpp's general.file_type (LLAMA_FTYPE_*) of each requested type. */
const FILE_TYPE: Record<GgufOutType, number> = { f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, bf16: 32 };

export interface GgufExportReport {
  arch: 'llama' | 'deci' | 'qwen2';
  tensors: number;
  bytes: number;
  perLayer: boolean;
  notes: TensorNote[];
}

const uniformLayers = (c: LlamaConfig) =>
  c.layers.every(
    (l) =>
      l.intermediateSize === c.layers[0].intermediateSize && l.numHeads === c.layers[0].numHeads && l.numKvHeads === c.layers[0].numKvHeads,
  );

/** llama3 RoPE: the per-frequency divisors llama.cpp reads from `rope_freqs.weight` (as the HF converter computes them). */
function llama3RopeFactors(c: LlamaConfig): Float32Array {
  const s = c.ropeScaling!;
  if (s.type !== 'llama3') throw new Error('llama3RopeFactors: not a llama3 scaling');
  const dim = c.headDim,
    out = new Float32Array(dim / 2);
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor,
    highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.fround(c.ropeTheta ** Math.fround((2 * i) / dim));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

function modelMetadata(arch: string, c: LlamaConfig, name: string, type: GgufOutType, quantized: boolean): Map<string, GgufValue> {
  const md = new Map<string, GgufValue>();
  // an array only for a size that differs between layers (tools that expect a number still read the others)
  const perLayer = (f: (l: LlamaConfig['layers'][number]) => number): GgufValue =>
    c.layers.every((l) => f(l) === f(c.layers[0])) ? u32(f(c.layers[0])) : { type: 'i32[]', value: c.layers.map(f) };
  md.set('general.architecture', str(arch));
  md.set('general.type', str('model'));
  md.set('general.name', str(name));
  md.set('general.alignment', u32(GGUF_ALIGNMENT));
  md.set('general.file_type', u32(quantized && (type === 'f32' || type === 'f16' || type === 'bf16') ? FILE_TYPE.q4_1 : FILE_TYPE[type]));
  if (quantized || type.startsWith('q')) md.set('general.quantization_version', u32(2));
  md.set(`${arch}.vocab_size`, u32(c.vocabSize));
  md.set(`${arch}.context_length`, u32(c.maxPositions));
  md.set(`${arch}.embedding_length`, u32(c.hiddenSize));
  md.set(`${arch}.block_count`, u32(c.layers.length));
  md.set(
    `${arch}.feed_forward_length`,
    perLayer((l) => l.intermediateSize),
  );
  md.set(
    `${arch}.attention.head_count`,
    perLayer((l) => l.numHeads),
  );
  md.set(
    `${arch}.attention.head_count_kv`,
    perLayer((l) => l.numKvHeads),
  );
  // explicit: a sub-network's heads × head_dim need not equal the hidden size
  md.set(`${arch}.attention.key_length`, u32(c.headDim));
  md.set(`${arch}.attention.value_length`, u32(c.headDim));
  md.set(`${arch}.rope.dimension_count`, u32(c.headDim));
  md.set(`${arch}.rope.freq_base`, f32(c.ropeTheta));
  md.set(`${arch}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps));
  if (c.ropeScaling?.type === 'linear') {
    md.set(`${arch}.rope.scaling.type`, str('linear'));
    md.set(`${arch}.rope.scaling.factor`, f32(c.ropeScaling.factor));
  }
  return md;
}

/** Writes `modelDir` as a GGUF file at `outPath` (atomically) with 2-D float tensors stored as `type`. */
export function exportGguf(modelDir: string, outPath: string, type: GgufOutType): GgufExportReport {
  const configPath = join(modelDir, 'config.json');
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${configPath}: cannot read (${(e as Error).message}); --model must be a Hugging Face model directory`);
  }
  const family = hfFamily(json, configPath);
  const c = parseHfConfig(json, configPath);
  const perLayer = !uniformLayers(c);
  if (perLayer && family === 'qwen2') {
    throw new Error(
      `${configPath}: lonas_layers gives Qwen2 layers different sizes, and llama.cpp's qwen2 graph builds every layer at one size (no per-layer variant exists for qwen2); export a sub-network with equal layers (search space groups with "share": "all")`,
    );
  }
  for (const [i, l] of c.layers.entries()) {
    if (l.numHeads % l.numKvHeads)
      throw new Error(
        `${configPath}: layer ${i} has ${l.numHeads} query heads for ${l.numKvHeads} key/value heads; llama.cpp needs a whole number of query heads per key/value head`,
      );
  }
  const arch = family === 'qwen2' ? 'qwen2' : perLayer ? 'deci' : 'llama';
  const requested = type.toUpperCase() as GgmlType;
  const { files, where } = openWeights(modelDir);
  try {
    const plan = planTensors(where, storedNames(c, files, where), c, requested, arch !== 'qwen2');
    const quantized = plan.tensors.some((t) => t.type === 'Q4_1' && requested !== 'Q4_1');
    const md = modelMetadata(arch, c, basename(outPath).replace(/\.gguf$/i, ''), type, quantized); // general.name: the file's name
    for (const [k, v] of tokenizerMetadata(modelDir, c.vocabSize)) md.set(k, v);
    const tensors: GgufTensor[] = [...plan.tensors];
    if (c.ropeScaling?.type === 'llama3') {
      const factors = llama3RopeFactors(c);
      tensors.unshift({ name: 'rope_freqs.weight', shape: [factors.length], type: 'F32', bytes: () => new Uint8Array(factors.buffer) });
    }
    const bytes = writeGguf(outPath, md, tensors);
    return { arch, tensors: tensors.length, bytes, perLayer, notes: plan.notes };
  } finally {
    for (const f of files) f.close();
  }
}
