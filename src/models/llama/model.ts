/**
 * Llama-family decoder (Llama, Mistral, Qwen2-style q/k/v bias) over the tensor layer, following the
 * Hugging Face modeling equations. Weights are addressed by their HF names; sizes come per layer.
 *
 *   h = embed[ids]                                            (B, T, C)
 *   per layer: h += o_proj(attn(rope(q(norm1 h)), rope(k(…)), v(…)))
 *              h += down(silu(gate(norm2 h)) ⊙ up(norm2 h))
 *   logits = lm_head(norm h)   (lm_head = embed when tied)    (B, T, V)
 */
import { Bf16Matrix, Tensor, add, attention, narrow, noGrad, reshape, rope, swiglu } from '../../tensor/index.ts';
import { attentionForward } from '../../tensor/attention-core.ts';
import { kernels } from '../../kernels/index.ts';
import { KvCache } from './kv-cache.ts';
import type { RopeTables } from '../../tensor/index.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/modules.ts';
import type { LinearLike, WeightStore } from '../../nn/modules.ts';
import { ropeTables } from '../../nn/rope.ts';
import type { LlamaConfig } from './config.ts';

/** One row of a packed prefill: batch row b, its left padding, real length, and offset among the packed tokens. */
interface PackedRow { b: number; pad: number; len: number; off: number }

export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type ProjectionName = (typeof PROJECTIONS)[number];

export interface DecoderLayer {
  inputNorm: RMSNorm;
  postAttentionNorm: RMSNorm;
  /** q_proj … down_proj, replaceable by adapters */
  proj: Record<ProjectionName, LinearLike>;
}

/** HF parameter name of a layer projection. */
export function projectionWeightName(layer: number, proj: ProjectionName): string {
  const block = proj === 'gate_proj' || proj === 'up_proj' || proj === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${block}.${proj}`;
}

/**
 * Head counts of a layer as its projections are currently sized: elastic attention heads shrink q/k/v
 * outputs and o_proj inputs, so the sizes are read from the modules, not from the config.
 */
function activeHeads(layer: DecoderLayer, headDim: number): { numHeads: number; numKvHeads: number } {
  const numHeads = layer.proj.q_proj.outFeatures / headDim;
  const numKvHeads = layer.proj.k_proj.outFeatures / headDim;
  if (!Number.isInteger(numHeads) || !Number.isInteger(numKvHeads) || numHeads % numKvHeads !== 0) {
    throw new Error(`attention: q/k widths ${layer.proj.q_proj.outFeatures}/${layer.proj.k_proj.outFeatures} are not whole GQA head groups of ${headDim}`);
  }
  return { numHeads, numKvHeads };
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
   */
  constructor(readonly config: LlamaConfig, weights: Map<string, Tensor | Bf16Matrix>) {
    const c = config;
    const find = (name: string, shape: number[]): Tensor | Bf16Matrix => {
      const t = weights.get(name);
      if (!t) throw new Error(`model weights: missing tensor '${name}'`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`model weights: '${name}' has shape [${t.shape.join(', ')}], the config expects [${shape.join(', ')}]`);
      }
      t.name = name;
      return t;
    };
    const get = (name: string, shape: number[]): Tensor => {
      const t = find(name, shape);
      if (t instanceof Bf16Matrix) throw new Error(`model weights: '${name}' is given in bfloat16; only projection, embedding and LM-head weights can stay bf16`);
      return t;
    };
    const C = c.hiddenSize, D = c.headDim;
    this.embed = new Embedding(find('model.embed_tokens.weight', [c.vocabSize, C]));
    this.layers = c.layers.map((s, i) => {
      const p = (proj: ProjectionName, shape: number[], bias = false) =>
        new Linear(find(`${projectionWeightName(i, proj)}.weight`, shape), bias ? get(`${projectionWeightName(i, proj)}.bias`, [shape[0]]) : null);
      return {
        inputNorm: new RMSNorm(get(`model.layers.${i}.input_layernorm.weight`, [C]), c.rmsNormEps),
        postAttentionNorm: new RMSNorm(get(`model.layers.${i}.post_attention_layernorm.weight`, [C]), c.rmsNormEps),
        proj: {
          q_proj: p('q_proj', [s.numHeads * D, C], c.attentionBias),
          k_proj: p('k_proj', [s.numKvHeads * D, C], c.attentionBias),
          v_proj: p('v_proj', [s.numKvHeads * D, C], c.attentionBias),
          o_proj: p('o_proj', [C, s.numHeads * D]),
          gate_proj: p('gate_proj', [s.intermediateSize, C]),
          up_proj: p('up_proj', [s.intermediateSize, C]),
          down_proj: p('down_proj', [C, s.intermediateSize]),
        },
      };
    });
    this.norm = new RMSNorm(get('model.norm.weight', [C]), c.rmsNormEps);
    this.lmHead = c.tieWordEmbeddings ? new Linear(this.embed.weightStore) : new Linear(find('lm_head.weight', [c.vocabSize, C]));
    this.rope = ropeTables({ headDim: D, maxPositions: c.maxPositions, theta: c.ropeTheta, scaling: c.ropeScaling });
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
    const stores = new Set<WeightStore>([this.embed.weightStore]);
    if (this.lmHead instanceof Linear) stores.add(this.lmHead.weightStore);
    let bytes = 0;
    for (const l of this.layers) {
      bytes += 4 * (l.inputNorm.weight.size + l.postAttentionNorm.weight.size);
      for (const p of Object.values(l.proj)) {
        // adapters and compressed layers wrap a base Linear: its storage (adapter tensors not counted)
        const base = p instanceof Linear ? p : (p as { base?: unknown }).base;
        if (!(base instanceof Linear)) throw new Error(`weightStorage: ${p.constructor.name} has no base Linear`);
        stores.add(base.weightStore);
        if (base.bias) bytes += 4 * base.bias.size;
      }
    }
    bytes += 4 * this.norm.weight.size;
    let bf16 = 0, f32 = 0;
    for (const s of stores) {
      const n = s.shape[0] * s.shape[1];
      if (s.bf16) { bf16++; bytes += 2 * n; } else { f32++; bytes += 4 * n; }
    }
    return { bf16, f32, bytes };
  }

  /** Every tensor of the model by HF name (tied head listed once). Widens bfloat16 weights to float32 (see WeightStore). */
  namedParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const add = (t: Tensor | null) => t && t.name && out.set(t.name, t);
    add(this.embed.weight);
    this.layers.forEach((l) => {
      add(l.inputNorm.weight);
      add(l.postAttentionNorm.weight);
      for (const p of Object.values(l.proj)) for (const t of p.baseTensors()) add(t);
    });
    add(this.norm.weight);
    if (this.lmHead instanceof Linear) add(this.lmHead.weight);
    return out;
  }

  /** ids (B·T) row-major → logits (B, T, V). Positions default to 0..T-1 for every row. */
  forward(ids: Int32Array, batch: number, seq: number, positions?: Int32Array): Tensor {
    if (ids.length !== batch * seq) throw new Error(`forward: ${ids.length} ids for batch ${batch} × seq ${seq}`);
    const pos = positions ?? Int32Array.from({ length: batch * seq }, (_, i) => i % seq);
    let h = this.embed.forward(ids, [batch, seq]); // (B, T, C)
    for (let i = 0; i < this.layers.length; i++) h = this.forwardLayer(i, h, pos);
    return this.lmHead.forward(this.norm.forward(h)); // (B, T, V)
  }

  /** One decoder layer: h (B, T, C) → (B, T, C) at per-token positions (B·T). Used by layer-wise calibration. */
  forwardLayer(i: number, h: Tensor, positions: Int32Array): Tensor {
    const [batch, seq] = h.shape;
    const layer = this.layers[i];
    h = add(h, this.attentionBlock(layer, i, h, positions, batch, seq));
    return add(h, this.mlpBlock(layer, h));
  }

  /**
   * Inference with a KV cache (no autograd): runs ids (B·T) at positions `positions` (default
   * cache.length + t), appends their keys/values to the cache, and returns logits (B, T, V), or (B, 1, V)
   * for the last position only with `lastOnly` (prefill needs just that). `keyStart[b]` masks the left
   * padding of row b.
   */
  forwardCached(ids: Int32Array, batch: number, seq: number, cache: KvCache, opts: { positions?: Int32Array; keyStart?: Int32Array | null; lastOnly?: boolean } = {}): Tensor {
    if (cache.batch !== batch) throw new Error(`forwardCached: cache has ${cache.batch} rows, input has ${batch}`);
    if (ids.length !== batch * seq) throw new Error(`forwardCached: ${ids.length} ids for batch ${batch} × seq ${seq}`);
    const ks = opts.keyStart ?? null;
    if (opts.lastOnly && seq > 1 && cache.length === 0 && ks && ks.some((s) => s > 0)) {
      return noGrad(() => this.prefillPacked(ids, batch, seq, cache, ks, opts.positions));
    }
    return noGrad(() => {
      const start = cache.length;
      const pos = opts.positions ?? Int32Array.from({ length: batch * seq }, (_, i) => start + (i % seq));
      let h = this.embed.forward(ids, [batch, seq]); // (B, T, C)
      this.layers.forEach((layer, i) => {
        h = add(h, this.cachedAttentionBlock(layer, i, h, pos, batch, seq, cache, opts.keyStart ?? null));
        h = add(h, this.mlpBlock(layer, h));
      });
      cache.length = start + seq;
      if (opts.lastOnly && seq > 1) h = narrow(h, 1, seq - 1, 1); // (B, 1, C)
      return this.lmHead.forward(this.norm.forward(h));
    });
  }

  /**
   * Prefill of a left-padded batch into an empty cache without computing the padding: the rows' real tokens
   * (row b's start at keyStart[b]) run packed as one sequence of Σ real lengths through every projection (one
   * GEMM per projection), each row's attention reads only its own keys, and its keys/values land at their
   * padded positions in the cache, so later steps see the same cache layout as the padded path (padding slots
   * stay zero and masked). Returns the last position's logits (B, 1, V). Each real token is computed exactly
   * as in the padded path (padding keys get weight 0 there).
   */
  private prefillPacked(ids: Int32Array, B: number, T: number, cache: KvCache, keyStart: Int32Array, positions?: Int32Array): Tensor {
    const rows: PackedRow[] = [];
    let n = 0;
    for (let b = 0; b < B; b++) {
      const pad = keyStart[b];
      if (pad < 0 || pad >= T) throw new Error(`forwardCached: row ${b} has no real token (padding start ${pad} of ${T})`);
      rows.push({ b, pad, len: T - pad, off: n });
      n += T - pad;
    }
    const idsP = new Int32Array(n), posP = new Int32Array(n); // (N) packed real tokens and their positions
    for (const r of rows) {
      idsP.set(ids.subarray(r.b * T + r.pad, (r.b + 1) * T), r.off);
      for (let t = 0; t < r.len; t++) posP[r.off + t] = positions ? positions[r.b * T + r.pad + t] : t;
    }
    let h = this.embed.forward(idsP, [1, n]); // (1, N, C)
    this.layers.forEach((layer, i) => {
      h = add(h, this.packedAttentionBlock(layer, i, h, posP, rows, cache));
      h = add(h, this.mlpBlock(layer, h));
    });
    cache.length = T;
    const C = this.config.hiddenSize;
    const hd = h.contiguousData();
    const last = new Float32Array(B * C); // (B, 1, C): each row's last real token
    for (const r of rows) last.set(hd.subarray((r.off + r.len - 1) * C, (r.off + r.len) * C), r.b * C);
    return this.lmHead.forward(this.norm.forward(new Tensor(last, [B, 1, C])));
  }

  /** Attention of packed rows h (1, N, C): row r's tokens [off, off + len) see only their own keys. */
  private packedAttentionBlock(layer: DecoderLayer, i: number, h: Tensor, pos: Int32Array, rows: PackedRow[], cache: KvCache): Tensor {
    const s = activeHeads(layer, this.config.headDim);
    const D = this.config.headDim, N = pos.length, Hq = s.numHeads, Hkv = s.numKvHeads;
    const x = layer.inputNorm.forward(h);
    const q = rope(reshape(layer.proj.q_proj.forward(x), [1, N, Hq, D]), pos, this.rope).contiguousData(); // (N, Hq, D)
    const k = rope(reshape(layer.proj.k_proj.forward(x), [1, N, Hkv, D]), pos, this.rope).contiguousData(); // (N, Hkv, D)
    const v = layer.proj.v_proj.forward(x).contiguousData(); // (N, Hkv·D)
    const out = new Float32Array(N * Hq * D); // (N, Hq, D)
    const stride = cache.rowStride(i), kv = Hkv * D;
    for (const r of rows) {
      const at = r.b * stride + r.pad * kv; // cache row b, position pad
      cache.k[i].set(k.subarray(r.off * kv, (r.off + r.len) * kv), at);
      cache.v[i].set(v.subarray(r.off * kv, (r.off + r.len) * kv), at);
      const probs = new Float32Array(Hq * r.len * r.len);
      attentionForward(kernels(), q.subarray(r.off * Hq * D, (r.off + r.len) * Hq * D), cache.k[i].subarray(at), cache.v[i].subarray(at),
        out.subarray(r.off * Hq * D, (r.off + r.len) * Hq * D), probs,
        { B: 1, Tq: r.len, Tk: r.len, Hq, Hkv, D, kvBatchStride: 0, scale: 1 / Math.sqrt(D), causal: true });
    }
    return layer.proj.o_proj.forward(new Tensor(out, [1, N, Hq * D]));
  }

  private cachedAttentionBlock(layer: DecoderLayer, i: number, h: Tensor, pos: Int32Array, B: number, T: number, cache: KvCache, keyStart: Int32Array | null): Tensor {
    const s = activeHeads(layer, this.config.headDim);
    const D = this.config.headDim;
    const x = layer.inputNorm.forward(h);
    const q = rope(reshape(layer.proj.q_proj.forward(x), [B, T, s.numHeads, D]), pos, this.rope); // (B, T, Hq, D)
    const k = rope(reshape(layer.proj.k_proj.forward(x), [B, T, s.numKvHeads, D]), pos, this.rope); // (B, T, Hkv, D)
    const v = layer.proj.v_proj.forward(x); // (B, T, Hkv·D)
    cache.append(i, k.contiguousData() as Float32Array, v.contiguousData() as Float32Array, T);
    const Tk = cache.length + T;
    const out = new Float32Array(B * T * s.numHeads * D); // (B, T, Hq, D)
    if (T === 1) { // decode: one fused kernel call per layer (no attention weights kept)
      kernels().attentionDecode(q.contiguousData(), cache.k[i], cache.v[i], out, B, Tk, s.numHeads, s.numKvHeads, D, cache.rowStride(i), 1 / Math.sqrt(D), keyStart);
      return layer.proj.o_proj.forward(new Tensor(out, [B, 1, s.numHeads * D]));
    }
    const probs = this.probsScratch(B * s.numHeads * T * Tk); // (B, Hq, T, Tk): every entry is written
    attentionForward(kernels(), q.contiguousData(), cache.k[i], cache.v[i], out, probs, {
      B, Tq: T, Tk, Hq: s.numHeads, Hkv: s.numKvHeads, D, kvBatchStride: cache.rowStride(i), scale: 1 / Math.sqrt(D), causal: true, keyStart,
    });
    return layer.proj.o_proj.forward(new Tensor(out, [B, T, s.numHeads * D]));
  }

  private probs = new Float32Array(0);

  /**
   * Attention weights of cached inference, reused across layers and steps (a decode step of a batch allocated
   * ~3 MB of them at 400 cached keys, a visible share of its time in allocation and GC). attentionForward
   * writes every element; nothing keeps them after the call.
   */
  private probsScratch(n: number): Float32Array {
    if (this.probs.length < n) this.probs = new Float32Array(Math.max(n, this.probs.length * 2));
    return this.probs.subarray(0, n);
  }

  private attentionBlock(layer: DecoderLayer, i: number, h: Tensor, pos: Int32Array, B: number, T: number): Tensor {
    const s = activeHeads(layer, this.config.headDim);
    const D = this.config.headDim;
    const x = layer.inputNorm.forward(h); // (B, T, C)
    const q = rope(reshape(layer.proj.q_proj.forward(x), [B, T, s.numHeads, D]), pos, this.rope); // (B, T, Hq, D)
    const k = rope(reshape(layer.proj.k_proj.forward(x), [B, T, s.numKvHeads, D]), pos, this.rope); // (B, T, Hkv, D)
    const v = reshape(layer.proj.v_proj.forward(x), [B, T, s.numKvHeads, D]);
    const o = attention(q, k, v, { causal: true }); // (B, T, Hq, D)
    return layer.proj.o_proj.forward(reshape(o, [B, T, s.numHeads * D])); // (B, T, C)
  }

  private mlpBlock(layer: DecoderLayer, h: Tensor): Tensor {
    const x = layer.postAttentionNorm.forward(h);
    return layer.proj.down_proj.forward(swiglu(layer.proj.gate_proj.forward(x), layer.proj.up_proj.forward(x)));
  }
}
