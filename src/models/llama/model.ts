/**
 * Llama-family decoder (Llama, Mistral, Qwen2-style q/k/v bias) over the tensor layer, following the
 * Hugging Face modeling equations. Weights are addressed by their HF names (weights.ts); sizes come per layer.
 *
 *   h = embed[ids]                                              (B, T, C)
 *   per layer: h = h + o_proj(attention(rope(q(n)), rope(k(n)), v(n))),   n = RMSNorm₁(h)
 *              h = h + down(silu(gate(m)) ⊙ up(m)),                       m = RMSNorm₂(h)
 *   logits = lm_head(RMSNorm(h))   (lm_head = embed when tied)  (B, T, V)
 *
 * This file is the training / scoring forward (autograd); inference with a KV cache runs the same layer
 * pieces (attentionInputs, mlp, logits) in prefill.ts.
 */
import { Bf16Matrix, type Tensor, add, attention, checkpoint, reshape, rope, swiglu } from '../../tensor/index.ts';
import type { Rng, RopeTables } from '../../tensor/index.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/modules.ts';
import type { LinearLike, WeightStore } from '../../nn/modules.ts';
import { ropeTables } from '../../nn/rope.ts';
import type { LlamaConfig } from './config.ts';
import { KvCache } from './kv-cache.ts';
import { llamaWeightTable, mapProjections } from './weights.ts';
import type { LlamaTensor, ProjectionName } from './weights.ts';
import { forwardCached } from './prefill.ts';
import type { AttentionInputs, CachedForwardOptions } from './prefill.ts';

export { OUTPUT_ONLY_PROJECTIONS, PROJECTIONS, SEQUENTIAL_GROUPS, projectionWeightName } from './weights.ts';
export type { ProjectionName } from './weights.ts';

export interface ForwardOptions {
  /** per-token positions (B·T); default 0..T-1 in every row */
  positions?: Int32Array;
  /** checkpoint every decoder layer; `rngs`: the random streams the layers draw from (dropout), replayed on recompute */
  checkpoint?: { rngs: readonly Rng[] };
}

export interface DecoderLayer {
  inputNorm: RMSNorm;
  postAttentionNorm: RMSNorm;
  /** q_proj … down_proj, replaceable by adapters */
  proj: Record<ProjectionName, LinearLike>;
}

export class LlamaModel {
  readonly embed: Embedding;
  readonly layers: DecoderLayer[];
  readonly norm: RMSNorm;
  lmHead: LinearLike; // replaced by a QuantLinear when the checkpoint quantises the LM head
  private readonly rope: RopeTables;

  /**
   * `weights` maps HF names to tensors; missing or mis-shaped tensors are reported by name. Projection,
   * embedding and LM-head weights may be Bf16Matrix (kept in bfloat16, see nn/modules.ts WeightStore).
   * With `deferLayers`, `weights` holds the embedding, final norm and head only, and the decoder layers are
   * put in one at a time with `loadLayer` / `unloadLayer` (layer-wise compression of a checkpoint larger than
   * memory); only what runs layer by layer works on such a model (forwardLayer, calibration).
   */
  constructor(
    readonly config: LlamaConfig,
    weights: Map<string, Tensor | Bf16Matrix>,
    opts: { deferLayers?: boolean } = {},
  ) {
    const c = config,
      table = llamaWeightTable(c);
    this.embed = new Embedding(findWeight(weights, table.embed));
    this.layers = opts.deferLayers ? new Array<DecoderLayer>(table.layers.length) : table.layers.map((_, i) => this.buildLayer(i, weights));
    this.norm = new RMSNorm(floatWeight(weights, table.norm), c.rmsNormEps);
    this.lmHead = new Linear(table.lmHead ? findWeight(weights, table.lmHead) : this.embed.weightStore);
    this.rope = ropeTables({ headDim: c.headDim, maxPositions: c.maxPositions, theta: c.ropeTheta, scaling: c.ropeScaling });
  }

  private buildLayer(i: number, weights: Map<string, Tensor | Bf16Matrix>): DecoderLayer {
    const l = llamaWeightTable(this.config).layers[i],
      eps = this.config.rmsNormEps;
    return {
      inputNorm: new RMSNorm(floatWeight(weights, l.inputNorm), eps),
      postAttentionNorm: new RMSNorm(floatWeight(weights, l.postAttentionNorm), eps),
      proj: mapProjections(
        (p): LinearLike => new Linear(findWeight(weights, l.proj[p].weight), l.proj[p].bias && floatWeight(weights, l.proj[p].bias)),
      ),
    };
  }

  /** Puts decoder layer i in from `weights` (its tensors by HF name; see deferLayers). */
  loadLayer(i: number, weights: Map<string, Tensor | Bf16Matrix>): void {
    this.layers[i] = this.buildLayer(i, weights);
  }

  /** Drops decoder layer i (see deferLayers), so its tensors can be freed. */
  unloadLayer(i: number): void {
    delete this.layers[i];
  }

  /**
   * ids (B·T) row-major → logits (B, T, V). Positions default to 0..T-1 for every row. With `checkpoint`, each
   * decoder layer is checkpointed (tensor/checkpoint.ts): training keeps only the layers' inputs and recomputes
   * each layer in backward, replaying the dropout streams `checkpoint.rngs` (the same gradients, bit for bit).
   */
  forward(ids: Int32Array, batch: number, seq: number, opts: ForwardOptions = {}): Tensor {
    if (ids.length !== batch * seq) throw new Error(`forward: ${ids.length} ids for batch ${batch} × seq ${seq}`);
    const pos = opts.positions ?? Int32Array.from({ length: batch * seq }, (_, i) => i % seq);
    const replay = opts.checkpoint;
    let h = this.embed.forward(ids, [batch, seq]); // (B, T, C)
    for (let i = 0; i < this.layers.length; i++) {
      const layer = (x: Tensor) => this.forwardLayer(i, x, pos);
      h = replay ? checkpoint(layer, h, replay.rngs) : layer(h);
    }
    return this.logits(h); // (B, T, V)
  }

  /**
   * One decoder layer: h (B, T, C) → (B, T, C) at per-token positions (B·T). Used by layer-wise calibration, which
   * may pass the attention block's output (o_proj's, (B, T, C)) when it already has it for this h.
   */
  forwardLayer(i: number, h: Tensor, positions: Int32Array, attention?: Tensor): Tensor {
    h = add(h, attention ?? this.selfAttention(i, h, positions));
    return add(h, this.mlp(i, h));
  }

  /** Causal self-attention of layer i over h (B, T, C) → (B, T, C), GQA: Hq / Hkv query heads share a key/value head. */
  private selfAttention(i: number, h: Tensor, positions: Int32Array): Tensor {
    const [B, T] = h.shape;
    const { q, k, v, numHeads } = this.attentionInputs(i, h, positions);
    const o = attention(q, k, v, { causal: true }); // (B, T, Hq, D)
    return this.layers[i].proj.o_proj.forward(reshape(o, [B, T, numHeads * this.config.headDim])); // (B, T, C)
  }

  /**
   * Queries, keys and values of layer i for h (B, T, C) at per-token positions (B·T): n = RMSNorm₁(h),
   * q = rope(q_proj n) (B, T, Hq, D), k = rope(k_proj n) (B, T, Hkv, D), v = v_proj n (B, T, Hkv, D).
   * The head counts are those the projections have now (elastic heads shrink them).
   */
  attentionInputs(i: number, h: Tensor, positions: Int32Array): AttentionInputs {
    const [B, T] = h.shape;
    const layer = this.layers[i],
      D = this.config.headDim;
    const { numHeads, numKvHeads } = activeHeads(layer, D);
    const n = layer.inputNorm.forward(h); // (B, T, C)
    const q = rope(reshape(layer.proj.q_proj.forward(n), [B, T, numHeads, D]), positions, this.rope);
    const k = rope(reshape(layer.proj.k_proj.forward(n), [B, T, numKvHeads, D]), positions, this.rope);
    const v = reshape(layer.proj.v_proj.forward(n), [B, T, numKvHeads, D]);
    return { q, k, v, numHeads, numKvHeads };
  }

  /** The SwiGLU MLP of layer i: h (B, T, C) → down(silu(gate(m)) ⊙ up(m)) (B, T, C), m = RMSNorm₂(h). */
  mlp(i: number, h: Tensor): Tensor {
    const layer = this.layers[i];
    const m = layer.postAttentionNorm.forward(h);
    return layer.proj.down_proj.forward(swiglu(layer.proj.gate_proj.forward(m), layer.proj.up_proj.forward(m)));
  }

  /** The output head: h (B, T, C) → lm_head(RMSNorm(h)) (B, T, V). */
  logits(h: Tensor): Tensor {
    return this.lmHead.forward(this.norm.forward(h));
  }

  /**
   * Inference with a KV cache (no autograd): runs ids (B·T) at positions `positions` (default
   * cache.length + t), appends their keys/values to the cache, and returns logits (B, T, V), or (B, 1, V)
   * for the last position only with `lastOnly`. See prefill.ts (padded and packed prefill, decode steps).
   */
  forwardCached(ids: Int32Array, batch: number, seq: number, cache: KvCache, opts: CachedForwardOptions = {}): Tensor {
    return forwardCached(this, ids, batch, seq, cache, opts);
  }

  /** A KV cache sized for the layers' currently active KV heads. */
  newCache(batch: number, maxLen: number): KvCache {
    const kvHeads = this.layers.map((l) => activeHeads(l, this.config.headDim).numKvHeads);
    return new KvCache(kvHeads, this.config.headDim, batch, maxLen, this.config.maxPositions);
  }

  /**
   * How the 2-D weights (projections, embedding, untied LM head; the tied head counted once) are stored now:
   * how many are still bfloat16 and the bytes all parameters occupy (what one decode step streams, norms
   * included). A bf16 weight turns float32 when something asks for its Tensor (see WeightStore).
   */
  weightStorage(): { bf16: number; f32: number; bytes: number } {
    // a quantised head wraps its float Linear, counted like a quantised projection's base
    const stores = new Set<WeightStore>([this.embed.weightStore, baseLinearOf(this.lmHead, 'LM head').weightStore]);
    let bytes = 0;
    for (const l of this.layers) {
      bytes += 4 * (l.inputNorm.weight.size + l.postAttentionNorm.weight.size);
      for (const [p, m] of Object.entries(l.proj)) {
        const base = baseLinearOf(m, p); // adapter tensors not counted
        stores.add(base.weightStore);
        if (base.bias) bytes += 4 * base.bias.size;
      }
    }
    bytes += 4 * this.norm.weight.size;
    let bf16 = 0,
      f32 = 0;
    for (const s of stores) {
      const n = s.shape[0] * s.shape[1];
      if (s.bf16) {
        bf16++;
        bytes += 2 * n;
      } else {
        f32++;
        bytes += 4 * n;
      }
    }
    return { bf16, f32, bytes };
  }

  /**
   * Every tensor of the model by HF name (tied head listed once) as stored: bfloat16 weights as their
   * Bf16Matrix, nothing widened; adapters excluded, a quantised module's dequantised weight.
   */
  storedParameters(): Map<string, Tensor | Bf16Matrix> {
    const out = new Map<string, Tensor | Bf16Matrix>();
    const add = (t: Tensor | Bf16Matrix | null) => t?.name && out.set(t.name, t);
    const addLinear = (m: Linear) => {
      add(m.weightStore.bf16 ?? m.weight);
      add(m.bias);
    };
    add(this.embed.weightStore.bf16 ?? this.embed.weight);
    this.layers.forEach((l) => {
      add(l.inputNorm.weight);
      add(l.postAttentionNorm.weight);
      for (const [p, m] of Object.entries(l.proj)) addLinear(baseLinearOf(m, p));
    });
    add(this.norm.weight);
    addLinear(baseLinearOf(this.lmHead, 'LM head')); // tied: the embedding again, same name
    return out;
  }

  /** Every tensor of the model by HF name (tied head listed once). Widens bfloat16 weights to float32 (see WeightStore). */
  namedParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const add = (t: Tensor | null) => t?.name && out.set(t.name, t);
    add(this.embed.weight);
    this.layers.forEach((l) => {
      add(l.inputNorm.weight);
      add(l.postAttentionNorm.weight);
      for (const p of Object.values(l.proj)) for (const t of p.baseTensors()) add(t);
    });
    add(this.norm.weight);
    for (const t of this.lmHead.baseTensors()) add(t); // tied: the embedding again, same name; quantised: the dequantised weight
    return out;
  }
}

/** The tensor of `row` in `weights`: missing or mis-shaped tensors are errors naming it. */
function findWeight(weights: Map<string, Tensor | Bf16Matrix>, row: LlamaTensor): Tensor | Bf16Matrix {
  const t = weights.get(row.name);
  if (!t) throw new Error(`model weights: missing tensor '${row.name}'`);
  if (t.shape.length !== row.shape.length || t.shape.some((d, i) => d !== row.shape[i])) {
    throw new Error(`model weights: '${row.name}' has shape [${t.shape.join(', ')}], the config expects [${row.shape.join(', ')}]`);
  }
  t.name = row.name;
  return t;
}

/** findWeight for the tensors that are always float32 (norms, biases). */
function floatWeight(weights: Map<string, Tensor | Bf16Matrix>, row: LlamaTensor): Tensor {
  const t = findWeight(weights, row);
  if (t instanceof Bf16Matrix)
    throw new Error(`model weights: '${row.name}' is given in bfloat16; only projection, embedding and LM-head weights can stay bf16`);
  return t;
}

/**
 * The Linear holding a module's stored weight: the module itself, or the base Linear an adapter, elastic or
 * compressed module wraps (its `base`). `what` names the module in the error.
 */
export function baseLinearOf(m: LinearLike, what: string): Linear {
  const base = m instanceof Linear ? m : (m as { base?: unknown }).base;
  if (!(base instanceof Linear)) throw new Error(`${what}: ${m.constructor.name} has no base Linear`);
  return base;
}

/**
 * Head counts of a layer as its projections are currently sized: elastic attention heads shrink q/k/v
 * outputs and o_proj inputs, so the sizes are read from the modules, not from the config.
 */
function activeHeads(layer: DecoderLayer, headDim: number): { numHeads: number; numKvHeads: number } {
  const numHeads = layer.proj.q_proj.outFeatures / headDim;
  const numKvHeads = layer.proj.k_proj.outFeatures / headDim;
  if (!Number.isInteger(numHeads) || !Number.isInteger(numKvHeads) || numHeads % numKvHeads !== 0) {
    throw new Error(
      `attention: q/k widths ${layer.proj.q_proj.outFeatures}/${layer.proj.k_proj.outFeatures} are not whole GQA head groups of ${headDim}`,
    );
  }
  return { numHeads, numKvHeads };
}
