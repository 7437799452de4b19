/**
 * The Llama weight table: every tensor of a Llama-family checkpoint (Llama, Mistral, Qwen2's q/k/v biases)
 * with its Hugging Face name, its shape from the config's per-layer sizes, how lonas may store it, and the
 * name llama.cpp's HF → GGUF converter gives it. The model constructor, the loader, extraction and saving
 * read names and shapes from here only.
 *
 * Shapes are row-major as PyTorch stores them, (out, in) for a projection. With C = hidden size, D = head
 * dim, V = vocab, and per layer Hq query heads, Hkv key/value heads and I MLP channels:
 *
 *   HF name                                         GGUF name (+ suffix) shape          bf16  GPTQ
 *   model.embed_tokens.weight                        token_embd           (V, C)         yes   no
 *   model.layers.N.input_layernorm.weight            blk.N.attn_norm      (C)            no    no
 *   model.layers.N.self_attn.q_proj.weight / .bias   blk.N.attn_q         (Hq·D, C)      yes   yes
 *   model.layers.N.self_attn.k_proj.weight / .bias   blk.N.attn_k         (Hkv·D, C)     yes   yes
 *   model.layers.N.self_attn.v_proj.weight / .bias   blk.N.attn_v         (Hkv·D, C)     yes   yes
 *   model.layers.N.self_attn.o_proj.weight           blk.N.attn_output    (C, Hq·D)      yes   yes
 *   model.layers.N.post_attention_layernorm.weight   blk.N.ffn_norm       (C)            no    no
 *   model.layers.N.mlp.gate_proj.weight              blk.N.ffn_gate       (I, C)         yes   yes
 *   model.layers.N.mlp.up_proj.weight                blk.N.ffn_up         (I, C)         yes   yes
 *   model.layers.N.mlp.down_proj.weight              blk.N.ffn_down       (C, I)         yes   yes
 *   model.norm.weight                                output_norm          (C)            no    no
 *   lm_head.weight (absent when tied)                output               (V, C)         yes   yes (opt-in)
 *
 * A bias (q/k/v with attention_bias, Qwen2) has shape (out), stays float32 and is never quantised. GGUF
 * names take the HF suffix, .weight or .bias. Names only: a GGUF writer still lists dimensions in
 * reverse order (ne[0] is the row length), and llama.cpp's converter permutes Llama's q/k rows from HF's
 * rotate-half RoPE layout to its interleaved one (not Qwen2's) — that is the exporter's business, not the
 * table's.
 */
import type { LayerSizes, LlamaConfig } from './config.ts';

export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type ProjectionName = (typeof PROJECTIONS)[number];
/**
 * The projections whose output reaches only the layer's output (the residual stream), no other projection of the
 * layer: a pass that only observes the projections' inputs and discards the layer's output need not compute them.
 */
export const OUTPUT_ONLY_PROJECTIONS: readonly ProjectionName[] = ['down_proj'];
/**
 * The projections grouped by shared input, in the order a decoder layer's forward reaches them: each group's input
 * depends only on the groups before it (q/k/v read RMSNorm₁(h); o the attention of q/k/v; gate/up RMSNorm₂ of the
 * residual after o; down the SwiGLU of gate/up). What GPTQ's true-sequential order quantises one after another.
 */
export const SEQUENTIAL_GROUPS: readonly (readonly ProjectionName[])[] = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['o_proj'],
  ['gate_proj', 'up_proj'],
  ['down_proj'],
];

export interface LlamaTensor {
  /** Hugging Face name, e.g. model.layers.3.self_attn.q_proj.weight */
  name: string;
  /** llama.cpp's GGUF name, e.g. blk.3.attn_q.weight */
  gguf: string;
  /** row-major (PyTorch) shape from the config's sizes */
  shape: number[];
  /** decoder layer, or null for the embedding, the final norm and the LM head */
  layer: number | null;
  /** the projection this weight or bias belongs to */
  proj: ProjectionName | null;
  /** may stay bfloat16 in memory (2-D weights: projections, embedding, LM head; norms and biases are float32) */
  bf16Capable: boolean;
  /** GPTQ may quantise it: every projection weight, and the LM head when asked to (`lonas quantize --lm-head`) */
  quantizable: boolean;
}

export interface ProjectionTensors {
  weight: LlamaTensor;
  /** q/k/v with attention_bias (Qwen2), else null */
  bias: LlamaTensor | null;
}

export interface LayerTensors {
  inputNorm: LlamaTensor;
  postAttentionNorm: LlamaTensor;
  proj: Record<ProjectionName, ProjectionTensors>;
}

export interface LlamaWeightTable {
  embed: LlamaTensor;
  layers: LayerTensors[];
  norm: LlamaTensor;
  /** null when the head is tied to the embedding */
  lmHead: LlamaTensor | null;
  /** every tensor, in checkpoint order (the order lonas writes them) */
  all: LlamaTensor[];
  byName: ReadonlyMap<string, LlamaTensor>;
}

interface ProjectionRow {
  block: 'self_attn' | 'mlp';
  gguf: string;
  /** (out, in) from the layer's sizes, C = hidden size, D = head dim */
  shape: (s: LayerSizes, C: number, D: number) => [number, number];
  /** carries a bias when the config has attention_bias */
  biased: boolean;
}

const PROJECTION_ROWS: Record<ProjectionName, ProjectionRow> = {
  q_proj: { block: 'self_attn', gguf: 'attn_q', shape: (s, C, D) => [s.numHeads * D, C], biased: true },
  k_proj: { block: 'self_attn', gguf: 'attn_k', shape: (s, C, D) => [s.numKvHeads * D, C], biased: true },
  v_proj: { block: 'self_attn', gguf: 'attn_v', shape: (s, C, D) => [s.numKvHeads * D, C], biased: true },
  o_proj: { block: 'self_attn', gguf: 'attn_output', shape: (s, C, D) => [C, s.numHeads * D], biased: false },
  gate_proj: { block: 'mlp', gguf: 'ffn_gate', shape: (s, C) => [s.intermediateSize, C], biased: false },
  up_proj: { block: 'mlp', gguf: 'ffn_up', shape: (s, C) => [s.intermediateSize, C], biased: false },
  down_proj: { block: 'mlp', gguf: 'ffn_down', shape: (s, C) => [C, s.intermediateSize], biased: false },
};

/** HF module name of a layer projection, e.g. model.layers.0.self_attn.q_proj (add .weight / .bias). */
export function projectionWeightName(layer: number, proj: ProjectionName): string {
  return `model.layers.${layer}.${projectionInBlock(proj)}`;
}

/** The projection's name inside its decoder layer, e.g. self_attn.q_proj, mlp.down_proj. */
export function projectionInBlock(proj: ProjectionName): string {
  return `${PROJECTION_ROWS[proj].block}.${proj}`;
}

/** { q_proj: f('q_proj'), …, down_proj: f('down_proj') } */
export function mapProjections<T>(f: (p: ProjectionName) => T): Record<ProjectionName, T> {
  return Object.fromEntries(PROJECTIONS.map((p) => [p, f(p)])) as Record<ProjectionName, T>;
}

/** The table for one config (per-layer sizes as the config gives them). */
export function llamaWeightTable(c: LlamaConfig): LlamaWeightTable {
  const C = c.hiddenSize,
    D = c.headDim;
  const tensor = (name: string, gguf: string, shape: number[], more: Partial<LlamaTensor> = {}): LlamaTensor => ({
    name,
    gguf,
    shape,
    layer: null,
    proj: null,
    bf16Capable: false,
    quantizable: false,
    ...more,
  });
  const embed = tensor('model.embed_tokens.weight', 'token_embd.weight', [c.vocabSize, C], { bf16Capable: true });
  const layers = c.layers.map((s, layer): LayerTensors => {
    const norm = (hf: string, gguf: string) => tensor(`model.layers.${layer}.${hf}.weight`, `blk.${layer}.${gguf}.weight`, [C], { layer });
    const projection = (proj: ProjectionName): ProjectionTensors => {
      const row = PROJECTION_ROWS[proj],
        hf = projectionWeightName(layer, proj),
        gguf = `blk.${layer}.${row.gguf}`;
      const shape = row.shape(s, C, D);
      return {
        weight: tensor(`${hf}.weight`, `${gguf}.weight`, shape, { layer, proj, bf16Capable: true, quantizable: true }),
        bias: row.biased && c.attentionBias ? tensor(`${hf}.bias`, `${gguf}.bias`, [shape[0]], { layer, proj }) : null,
      };
    };
    return {
      inputNorm: norm('input_layernorm', 'attn_norm'),
      postAttentionNorm: norm('post_attention_layernorm', 'ffn_norm'),
      proj: mapProjections(projection),
    };
  });
  const norm = tensor('model.norm.weight', 'output_norm.weight', [C]);
  const lmHead = c.tieWordEmbeddings
    ? null
    : tensor('lm_head.weight', 'output.weight', [c.vocabSize, C], { bf16Capable: true, quantizable: true });
  const all = [embed];
  for (const l of layers) {
    all.push(l.inputNorm, l.postAttentionNorm);
    for (const p of PROJECTIONS) {
      const { weight, bias } = l.proj[p];
      all.push(weight, ...(bias ? [bias] : []));
    }
  }
  all.push(norm, ...(lmHead ? [lmHead] : []));
  return { embed, layers, norm, lmHead, all, byName: new Map(all.map((t) => [t.name, t])) };
}
