/**
 * What the ONNX exporter reads: a Hugging Face–layout model directory (config.json with lonas's optional
 * `lonas_layers`, safetensors shards, GPTQ qweight/qzeros/scales/g_idx + quantization_config, tokenizer
 * files), i.e. exactly what `lonas extract --merge` writes. This file is the exporter's only contact with
 * lonas's model code besides src/export/merged-subnet.ts: `readModelSource` (the checkpoint reader).
 */
import { loadModelDir } from '../../models/llama/checkpoint.ts';
import type { LlamaConfig } from '../../models/llama/config.ts';
import type { QuantizedWeight } from '../../nn/quantized-weight.ts';

export interface ModelSource {
  dir: string;
  config: LlamaConfig;
  /** config.json as stored (unknown fields kept) */
  hfConfig: Record<string, unknown>;
  /** float32 tensor by HF name (e.g. model.layers.0.mlp.up_proj.weight); GPTQ projections dequantised exactly */
  tensor(name: string): { data: Float32Array; shape: readonly number[] };
  has(name: string): boolean;
  /** GPTQ codes, scales, zeros and g_idx of a quantised module (e.g. model.layers.0.mlp.up_proj, lm_head) */
  quantized(module: string): QuantizedWeight | undefined;
}

/** Reads a model directory (validated config, float32 weights, GPTQ modules). */
export function readModelSource(dir: string): ModelSource {
  const loaded = loadModelDir(dir, { weights: 'f32' });
  return {
    dir,
    config: loaded.config,
    hfConfig: loaded.hfConfig,
    has: (name) => loaded.weights.has(name),
    tensor(name) {
      const t = loaded.weights.get(name);
      if (!t) throw new Error(`${dir}: the model has no tensor '${name}' (its config.json says it should)`);
      return { data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), shape: t.shape };
    },
    quantized: (module) => loaded.quantized.get(module),
  };
}
