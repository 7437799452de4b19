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
import { scratchF32, withScratch } from '../../tensor/scratch.ts';
import { kernels } from '../../kernels/index.ts';
import { KvCache } from './kv-cache.ts';
import type { RopeTables } from '../../tensor/index.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/modules.ts';
import type { LinearLike, WeightStore } from '../../nn/modules.ts';
import { ropeTables } from '../../nn/rope.ts';
import type { LlamaConfig } from './config.ts';

/** One row of a packed prefill: batch row b, its left padding, real length, and offset among the packed tokens. */
/**
 * A row of a packed prefill: batch row b, its left padding `pad`, its `len` real tokens, of which the first
 * `shared` are the batch's common prefix (computed once, at packed offset 0) and the other len − shared sit at
 * packed offset `off`.
 */
interface PackedRow { b: number; pad: number; len: number; shared: number; off: number }

/** Options of LlamaModel.forwardCached. */
export interface CachedForwardOptions {
  positions?: Int32Array;
  keyStart?: Int32Array | null;
  lastOnly?: boolean;
  sharedPrefix?: number;
}

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

/**
 * The residual stream h += delta in place, for the no-grad inference paths: h is the embedding's fresh copy
 * that only the layer loop holds, so updating it saves an allocation per block (the same sums as `add`).
 */
function addResidual(h: Tensor, delta: Tensor): void {
  if (!h.isContiguous) throw new Error(`addResidual: the residual stream ${h.shape} must be contiguous`);
  const hd = h.contiguousData(), dd = delta.contiguousData(); // hd: h's own storage (no copy when contiguous)
  if (hd.length !== dd.length) throw new Error(`addResidual: ${h.shape} += ${delta.shape} needs equal contiguous shapes`);
  for (let i = 0; i < hd.length; i++) hd[i] += dd[i];
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
    // a quantised head wraps its float Linear, counted like a quantised projection's base
    const head = this.lmHead instanceof Linear ? this.lmHead : (this.lmHead as { base?: unknown }).base;
    if (!(head instanceof Linear)) throw new Error(`weightStorage: LM head ${this.lmHead.constructor.name} has no base Linear`);
    stores.add(head.weightStore);
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
    for (const t of this.lmHead.baseTensors()) add(t); // tied: the embedding again, same name; quantised: the dequantised weight
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
   * padding of row b. `sharedPrefix` (prefill only): the first that many real tokens of every row are the same
   * tokens at the same positions; they are computed once and their keys/values copied to every row.
   */
  forwardCached(ids: Int32Array, batch: number, seq: number, cache: KvCache, opts: CachedForwardOptions = {}): Tensor {
    if (cache.batch !== batch) throw new Error(`forwardCached: cache has ${cache.batch} rows, input has ${batch}`);
    if (ids.length !== batch * seq) throw new Error(`forwardCached: ${ids.length} ids for batch ${batch} × seq ${seq}`);
    const ks = opts.keyStart ?? null;
    const shared = opts.sharedPrefix ?? 0;
    if (opts.lastOnly && seq > 1 && cache.length === 0 && ((ks && ks.some((s) => s > 0)) || shared > 0)) {
      return noGrad(() => this.prefillPacked(ids, batch, seq, cache, ks ?? new Int32Array(batch), opts.positions, shared));
    }
    if (shared > 0) throw new Error('forwardCached: sharedPrefix needs a prefill (lastOnly, seq > 1) into an empty cache');
    return noGrad(() => {
      const start = cache.length;
      const pos = opts.positions ?? Int32Array.from({ length: batch * seq }, (_, i) => start + (i % seq));
      let h = this.embed.forward(ids, [batch, seq]); // (B, T, C), a fresh copy the layers update in place
      this.layers.forEach((layer, i) => {
        withScratch(() => { // nothing of the layer's activations outlives it: copied into h and the cache
          addResidual(h, this.cachedAttentionBlock(layer, i, h, pos, batch, seq, cache, opts.keyStart ?? null));
          addResidual(h, this.mlpBlock(layer, h));
        });
      });
      cache.length = start + seq;
      if (opts.lastOnly && seq > 1) h = narrow(h, 1, seq - 1, 1); // (B, 1, C)
      return this.lmHead.forward(this.norm.forward(h));
    });
  }

  /**
   * Prefill of a left-padded batch into an empty cache without computing the padding: the rows' real tokens
   * (row b's start at keyStart[b]) run packed as one sequence through every projection (one GEMM per
   * projection), each row's attention reads only its own keys, and its keys/values land at their padded
   * positions in the cache, so later steps see the same cache layout as the padded path (padding slots stay
   * zero and masked). With `shared` > 0 the rows' common first `shared` tokens are packed once (at offset 0):
   * a token's keys, values and output depend only on the tokens before it, so every row gets the same numbers
   * as if it had computed them itself. Returns the last position's logits (B, 1, V). Each real token is
   * computed exactly as in the padded path (padding keys get weight 0 there).
   */
  private prefillPacked(ids: Int32Array, B: number, T: number, cache: KvCache, keyStart: Int32Array, positions: Int32Array | undefined, shared: number): Tensor {
    const rows: PackedRow[] = [];
    let n = shared;
    for (let b = 0; b < B; b++) {
      const pad = keyStart[b];
      if (pad < 0 || pad >= T) throw new Error(`forwardCached: row ${b} has no real token (padding start ${pad} of ${T})`);
      const len = T - pad;
      if (shared >= len) throw new Error(`forwardCached: sharedPrefix ${shared} must be shorter than every row (row ${b} has ${len} tokens)`);
      rows.push({ b, pad, len, shared, off: n });
      n += len - shared;
    }
    const posAt = (r: PackedRow, t: number) => (positions ? positions[r.b * T + r.pad + t] : t); // position of real token t
    const idsP = new Int32Array(n), posP = new Int32Array(n); // (N) packed real tokens and their positions
    for (const r of rows) {
      for (let t = 0; t < shared; t++) {
        const [id, pos] = [ids[r.b * T + r.pad + t], posAt(r, t)];
        if (r === rows[0]) { idsP[t] = id; posP[t] = pos; } else if (idsP[t] !== id || posP[t] !== pos) {
          throw new Error(`forwardCached: sharedPrefix ${shared}, but row ${r.b}'s token ${t} (id ${id}, position ${pos}) differs from row ${rows[0].b}'s`);
        }
      }
      idsP.set(ids.subarray(r.b * T + r.pad + shared, (r.b + 1) * T), r.off);
      for (let t = shared; t < r.len; t++) posP[r.off + t - shared] = posAt(r, t);
    }
    const h = this.embed.forward(idsP, [1, n]); // (1, N, C), a fresh copy the layers update in place
    this.layers.forEach((layer, i) => {
      withScratch(() => {
        addResidual(h, this.packedAttentionBlock(layer, i, h, posP, rows, shared, cache));
        addResidual(h, this.mlpBlock(layer, h));
      });
    });
    cache.length = T;
    const C = this.config.hiddenSize;
    const hd = h.contiguousData();
    const last = new Float32Array(B * C); // (B, 1, C): each row's last real token
    for (const r of rows) {
      const at = r.off + r.len - shared - 1;
      last.set(hd.subarray(at * C, (at + 1) * C), r.b * C);
    }
    return this.lmHead.forward(this.norm.forward(new Tensor(last, [B, 1, C])));
  }

  /**
   * Attention of packed tokens h (1, N, C): the shared prefix [0, shared) attends causally to itself; row r's
   * own tokens [off, off + len − shared) see the prefix and their own earlier tokens, read back from row r's
   * cache (where both were just written).
   */
  private packedAttentionBlock(layer: DecoderLayer, i: number, h: Tensor, pos: Int32Array, rows: PackedRow[], shared: number, cache: KvCache): Tensor {
    const s = activeHeads(layer, this.config.headDim);
    const D = this.config.headDim, N = pos.length, Hq = s.numHeads, Hkv = s.numKvHeads;
    const x = layer.inputNorm.forward(h);
    const q = rope(reshape(layer.proj.q_proj.forward(x), [1, N, Hq, D]), pos, this.rope).contiguousData(); // (N, Hq, D)
    const k = rope(reshape(layer.proj.k_proj.forward(x), [1, N, Hkv, D]), pos, this.rope).contiguousData(); // (N, Hkv, D)
    const v = layer.proj.v_proj.forward(x).contiguousData(); // (N, Hkv·D)
    const out = scratchF32(N * Hq * D); // (N, Hq, D)
    const stride = cache.rowStride(i), kv = Hkv * D;
    const attend = (q0: number, Tq: number, kAt: number, Tk: number) => {
      const probs = this.probsScratch(Hq * Tq * Tk); // (Hq, Tq, Tk)
      attentionForward(kernels(), q.subarray(q0 * Hq * D, (q0 + Tq) * Hq * D), cache.k[i].subarray(kAt), cache.v[i].subarray(kAt),
        out.subarray(q0 * Hq * D, (q0 + Tq) * Hq * D), probs, { B: 1, Tq, Tk, Hq, Hkv, D, kvBatchStride: 0, scale: 1 / Math.sqrt(D), causal: true });
    };
    for (const r of rows) {
      const at = r.b * stride + r.pad * kv; // cache row b, position pad
      if (shared > 0) {
        cache.k[i].set(k.subarray(0, shared * kv), at);
        cache.v[i].set(v.subarray(0, shared * kv), at);
      }
      cache.k[i].set(k.subarray(r.off * kv, (r.off + r.len - shared) * kv), at + shared * kv);
      cache.v[i].set(v.subarray(r.off * kv, (r.off + r.len - shared) * kv), at + shared * kv);
    }
    if (shared > 0) attend(0, shared, rows[0].b * stride + rows[0].pad * kv, shared);
    for (const r of rows) attend(r.off, r.len - shared, r.b * stride + r.pad * kv, r.len);
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
    const out = scratchF32(B * T * s.numHeads * D); // (B, T, Hq, D)
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
