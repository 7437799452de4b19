/**
 * The model configuration lonas computes with. Sizes are per layer (a sub-network extracted from an
 * elastic super-network has different MLP widths and head counts in each layer).
 */
import type { RopeScaling } from '../../nn/rope.ts';

export interface LayerSizes {
  /** MLP intermediate width of this layer */
  intermediateSize: number;
  /** query heads of this layer */
  numHeads: number;
  /** key/value heads of this layer (numHeads is a multiple of it) */
  numKvHeads: number;
}

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  headDim: number;
  layers: LayerSizes[];
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2) */
  attentionBias: boolean;
  /** GPTQ-quantised projections, and optionally the LM head (config.json `quantization_config`); absent for float checkpoints */
  quantization?: GptqConfig | null;
}

export interface GptqConfig {
  bits: number;
  groupSize: number;
  descAct: boolean;
  sym: boolean;
  /** v1 "gptq" stores zero − 1 in qzeros; "gptq_v2" stores the zero itself */
  format: 'gptq' | 'gptq_v2';
  /**
   * the LM head is GPTQ-quantised too (GPTQModel's `"lm_head": true`; absent = false): it is then a module
   * of its own (lm_head.qweight/…, never tied), while the embedding keeps its float weights
   */
  lmHead?: boolean;
  /**
   * the GPTQ projections of every layer when not all seven are (transformers' modules_in_block_to_quantize,
   * e.g. ["self_attn.q_proj", "self_attn.v_proj"]); absent = all. Written by saveModelDir; loading reads
   * each projection as its tensors are stored
   */
  modulesInBlock?: string[];
}

/** A uniform config (every layer the same size). */
export function uniformConfig(
  c: Omit<LlamaConfig, 'layers'> & { numLayers: number; intermediateSize: number; numHeads: number; numKvHeads: number },
): LlamaConfig {
  const { numLayers, intermediateSize, numHeads, numKvHeads, ...rest } = c;
  return { ...rest, layers: Array.from({ length: numLayers }, () => ({ intermediateSize, numHeads, numKvHeads })) };
}
