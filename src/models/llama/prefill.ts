/**
 * Inference with a KV cache (no autograd), over the decoder's own layer pieces (attentionInputs, mlp,
 * logits of model.ts), so the numbers are those of the training forward:
 *  - the padded path: a prefill of T tokens per row, or a decode step (T = 1, one fused kernel per layer);
 *  - the packed prefill: a left-padded batch (or one with a shared prefix) runs only its real tokens.
 * Both keep the residual stream in one buffer updated in place and free each layer's activations after it.
 */
import { Tensor, narrow, noGrad } from '../../tensor/index.ts';
import { attentionForward } from '../../tensor/attention-core.ts';
import { scratchF32, withScratch } from '../../tensor/scratch.ts';
import { kernels } from '../../kernels/index.ts';
import type { LinearLike } from '../../nn/modules.ts';
import type { LlamaConfig } from './config.ts';
import type { KvCache } from './kv-cache.ts';

/** Options of LlamaModel.forwardCached. */
export interface CachedForwardOptions {
  positions?: Int32Array;
  keyStart?: Int32Array | null;
  lastOnly?: boolean;
  sharedPrefix?: number;
}

/** q, k (RoPE applied) and v of one layer: (B, T, Hq, D), (B, T, Hkv, D), (B, T, Hkv, D). */
export interface AttentionInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  numHeads: number;
  numKvHeads: number;
}

/** What cached inference uses of a LlamaModel (declared here so that this file does not import model.ts back). */
export interface CachedDecoder {
  readonly config: LlamaConfig;
  readonly embed: { forward(ids: Int32Array, shape: number[]): Tensor };
  readonly layers: readonly { proj: { o_proj: LinearLike } }[];
  attentionInputs(i: number, h: Tensor, positions: Int32Array): AttentionInputs;
  mlp(i: number, h: Tensor): Tensor;
  logits(h: Tensor): Tensor;
}

/**
 * A row of a packed prefill: batch row b, its left padding `pad`, its `len` real tokens, of which the first
 * `shared` are the batch's common prefix (computed once, at packed offset 0) and the other len − shared sit at
 * packed offset `off`.
 */
interface PackedRow {
  b: number;
  pad: number;
  len: number;
  shared: number;
  off: number;
}

/**
 * Runs ids (B·T) at positions `positions` (default cache.length + t), appends their keys/values to the
 * cache, and returns logits (B, T, V), or (B, 1, V) for the last position only with `lastOnly` (prefill
 * needs just that). `keyStart[b]` masks the left padding of row b. `sharedPrefix` (prefill only): the first
 * that many real tokens of every row are the same tokens at the same positions; they are computed once and
 * their keys/values copied to every row.
 */
export function forwardCached(
  m: CachedDecoder,
  ids: Int32Array,
  batch: number,
  seq: number,
  cache: KvCache,
  opts: CachedForwardOptions = {},
): Tensor {
  if (cache.batch !== batch) throw new Error(`forwardCached: cache has ${cache.batch} rows, input has ${batch}`);
  if (ids.length !== batch * seq) throw new Error(`forwardCached: ${ids.length} ids for batch ${batch} × seq ${seq}`);
  const ks = opts.keyStart ?? null;
  const shared = opts.sharedPrefix ?? 0;
  if (opts.lastOnly && seq > 1 && cache.length === 0 && (ks?.some((s) => s > 0) || shared > 0)) {
    return noGrad(() => prefillPacked(m, ids, batch, seq, cache, ks ?? new Int32Array(batch), opts.positions, shared));
  }
  if (shared > 0) throw new Error('forwardCached: sharedPrefix needs a prefill (lastOnly, seq > 1) into an empty cache');
  return noGrad(() => {
    const start = cache.length;
    const pos = opts.positions ?? Int32Array.from({ length: batch * seq }, (_, i) => start + (i % seq));
    let h = m.embed.forward(ids, [batch, seq]); // (B, T, C), a fresh copy the layers update in place
    decodeLayersInPlace(m, h, (i) => cachedAttention(m, i, h, pos, cache, ks));
    cache.length = start + seq;
    if (opts.lastOnly && seq > 1) h = narrow(h, 1, seq - 1, 1); // (B, 1, C)
    return m.logits(h);
  });
}

/**
 * The decoder layers over the residual stream h, in place: h += attention_i(h); h += mlp_i(h). Nothing of a
 * layer's activations outlives it (copied into h and the cache), so each layer runs in its own scratch scope.
 */
function decodeLayersInPlace(m: CachedDecoder, h: Tensor, attend: (i: number) => Tensor): void {
  for (let i = 0; i < m.layers.length; i++) {
    withScratch(() => {
      addResidual(h, attend(i));
      addResidual(h, m.mlp(i, h));
    });
  }
}

/**
 * The residual stream h += delta in place, for the no-grad inference paths: h is the embedding's fresh copy
 * that only the layer loop holds, so updating it saves an allocation per block (the same sums as `add`).
 */
function addResidual(h: Tensor, delta: Tensor): void {
  if (!h.isContiguous) throw new Error(`addResidual: the residual stream ${h.shape} must be contiguous`);
  const hd = h.contiguousData(),
    dd = delta.contiguousData(); // hd: h's own storage (no copy when contiguous)
  if (hd.length !== dd.length) throw new Error(`addResidual: ${h.shape} += ${delta.shape} needs equal contiguous shapes`);
  for (let i = 0; i < hd.length; i++) hd[i] += dd[i];
}

/** Attention of layer i for h (B, T, C) whose keys/values are appended to the cache first; → (B, T, C). */
function cachedAttention(m: CachedDecoder, i: number, h: Tensor, pos: Int32Array, cache: KvCache, keyStart: Int32Array | null): Tensor {
  const [B, T] = h.shape;
  const D = m.config.headDim;
  const { q, k, v, numHeads: Hq, numKvHeads: Hkv } = m.attentionInputs(i, h, pos);
  cache.append(i, k.contiguousData() as Float32Array, v.contiguousData() as Float32Array, T);
  const Tk = cache.length + T;
  const out = scratchF32(B * T * Hq * D); // (B, T, Hq, D)
  if (T === 1) {
    // decode: one fused kernel call per layer (no attention weights kept)
    kernels().attentionDecode(
      q.contiguousData(),
      cache.k[i],
      cache.v[i],
      out,
      B,
      Tk,
      Hq,
      Hkv,
      D,
      cache.rowStride(i),
      1 / Math.sqrt(D),
      keyStart,
    );
  } else {
    attentionForward(kernels(), q.contiguousData(), cache.k[i], cache.v[i], out, probsScratch(B * Hq * T * Tk), {
      B,
      Tq: T,
      Tk,
      Hq,
      Hkv,
      D,
      kvBatchStride: cache.rowStride(i),
      scale: 1 / Math.sqrt(D),
      causal: true,
      keyStart,
    });
  }
  return m.layers[i].proj.o_proj.forward(new Tensor(out, [B, T, Hq * D]));
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
function prefillPacked(
  m: CachedDecoder,
  ids: Int32Array,
  B: number,
  T: number,
  cache: KvCache,
  keyStart: Int32Array,
  positions: Int32Array | undefined,
  shared: number,
): Tensor {
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
  const idsP = new Int32Array(n),
    posP = new Int32Array(n); // (N) packed real tokens and their positions
  for (const r of rows) {
    for (let t = 0; t < shared; t++) {
      const [id, pos] = [ids[r.b * T + r.pad + t], posAt(r, t)];
      if (r === rows[0]) {
        idsP[t] = id;
        posP[t] = pos;
      } else if (idsP[t] !== id || posP[t] !== pos) {
        throw new Error(
          `forwardCached: sharedPrefix ${shared}, but row ${r.b}'s token ${t} (id ${id}, position ${pos}) differs from row ${rows[0].b}'s`,
        );
      }
    }
    idsP.set(ids.subarray(r.b * T + r.pad + shared, (r.b + 1) * T), r.off);
    for (let t = shared; t < r.len; t++) posP[r.off + t - shared] = posAt(r, t);
  }
  const h = m.embed.forward(idsP, [1, n]); // (1, N, C), a fresh copy the layers update in place
  decodeLayersInPlace(m, h, (i) => packedAttention(m, i, h, posP, rows, shared, cache));
  cache.length = T;
  const C = m.config.hiddenSize;
  const hd = h.contiguousData();
  const last = new Float32Array(B * C); // (B, 1, C): each row's last real token
  for (const r of rows) {
    const at = r.off + r.len - shared - 1;
    last.set(hd.subarray(at * C, (at + 1) * C), r.b * C);
  }
  return m.logits(new Tensor(last, [B, 1, C]));
}

/**
 * Attention of layer i for packed tokens h (1, N, C): the shared prefix [0, shared) attends causally to
 * itself; row r's own tokens [off, off + len − shared) see the prefix and their own earlier tokens, read back
 * from row r's cache (where both were just written).
 */
function packedAttention(
  m: CachedDecoder,
  i: number,
  h: Tensor,
  pos: Int32Array,
  rows: PackedRow[],
  shared: number,
  cache: KvCache,
): Tensor {
  const D = m.config.headDim,
    N = pos.length;
  const a = m.attentionInputs(i, h, pos),
    Hq = a.numHeads,
    Hkv = a.numKvHeads;
  const q = a.q.contiguousData(),
    k = a.k.contiguousData(),
    v = a.v.contiguousData(); // (N, Hq, D), (N, Hkv, D), (N, Hkv, D)
  const out = scratchF32(N * Hq * D); // (N, Hq, D)
  const stride = cache.rowStride(i),
    kv = Hkv * D;
  const attend = (q0: number, Tq: number, kAt: number, Tk: number) => {
    const probs = probsScratch(Hq * Tq * Tk); // (Hq, Tq, Tk)
    attentionForward(
      kernels(),
      q.subarray(q0 * Hq * D, (q0 + Tq) * Hq * D),
      cache.k[i].subarray(kAt),
      cache.v[i].subarray(kAt),
      out.subarray(q0 * Hq * D, (q0 + Tq) * Hq * D),
      probs,
      { B: 1, Tq, Tk, Hq, Hkv, D, kvBatchStride: 0, scale: 1 / Math.sqrt(D), causal: true },
    );
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
  return m.layers[i].proj.o_proj.forward(new Tensor(out, [1, N, Hq * D]));
}

let probs = new Float32Array(0);

/**
 * Attention weights of cached inference, one buffer reused across layers, steps and models (a decode step of
 * a batch allocated ~3 MB of them at 400 cached keys, a visible share of its time in allocation and GC).
 * attentionForward writes every element it reads; nothing keeps them after the call.
 */
function probsScratch(n: number): Float32Array {
  if (probs.length < n) probs = new Float32Array(Math.max(n, probs.length * 2));
  return probs.subarray(0, n);
}
