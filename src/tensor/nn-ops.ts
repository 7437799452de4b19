/**
 * Fused neural-network operations (forward passes): embedding, RMSNorm, SiLU/SwiGLU, RoPE, softmax,
 * attention, cross-entropy. Each runs one fused kernel (see src/kernels/api.ts) and records its saved state.
 */
import { kernelsFor } from '../kernels/index.ts';
import type { FloatArray } from '../kernels/api.ts';
import { record } from './autograd.ts';
import { attentionForward } from './attention-core.ts';
import { Tensor, fmtShape, sameShape, allocLike, allocOut } from './tensor.ts';

function dense(t: Tensor): Tensor {
  return t.isContiguous ? t : new Tensor(t.contiguousData(), t.shape);
}

/** out[…] = w[ids[…]]: w (vocab, dim), ids any shape → (…ids.shape, dim). */
export function embedding(w: Tensor, ids: Int32Array, idsShape: readonly number[] = [ids.length]): Tensor {
  if (w.ndim !== 2) throw new Error(`embedding: weight must be 2-D, got ${fmtShape(w.shape)}`);
  const [vocab, dim] = w.shape;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw new Error(`embedding: token id ${ids[i]} at position ${i} is outside the vocabulary (0..${vocab - 1})`);
  }
  const wd = w.contiguousData();
  const out = allocLike(wd, ids.length * dim);
  kernelsFor(wd).embedding(wd, ids, out, ids.length, dim);
  return record('embedding', [w], { ids, vocab, dim }, new Tensor(out, [...idsShape, dim]));
}

/** RMSNorm over the last axis: y = x / sqrt(mean(x²) + eps) · w. x (…, dim), w (dim). */
export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const dim = x.shape[x.ndim - 1];
  if (w.ndim !== 1 || w.shape[0] !== dim) throw new Error(`rmsnorm: weight ${fmtShape(w.shape)} does not match input ${fmtShape(x.shape)}`);
  const xc = dense(x),
    wc = dense(w);
  const rows = xc.size / dim;
  const y = allocOut(xc.data, xc.size);
  const rstd = allocOut(xc.data, rows);
  kernelsFor(xc.data).rmsnorm(xc.contiguousData(), wc.contiguousData(), y, rstd, rows, dim, eps);
  return record('rmsnorm', [x, w], { x: xc, w: wc, rstd }, new Tensor(y, x.shape));
}

export function silu(x: Tensor): Tensor {
  const xc = dense(x);
  const y = allocOut(xc.data, xc.size);
  kernelsFor(xc.data).silu(xc.contiguousData(), y, xc.size);
  return record('silu', [x], { x: xc }, new Tensor(y, x.shape));
}

/** silu(gate) ⊙ up, same shapes. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!sameShape(gate.shape, up.shape)) throw new Error(`swiglu: gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} differ`);
  const g = dense(gate),
    u = dense(up);
  const y = allocOut(g.data, g.size);
  kernelsFor(g.data).swiglu(g.contiguousData(), u.contiguousData(), y, g.size);
  return record('swiglu', [gate, up], { gate: g, up: u }, new Tensor(y, gate.shape));
}

/** Rotary tables cos/sin of shape (positions, headDim/2), HF Llama style; see models/llama/rope.ts for scaling. */
export interface RopeTables {
  cos: FloatArray;
  sin: FloatArray;
  maxPositions: number;
  headDim: number;
}

/** RoPE (rotate-half) on x (B, T, H, D) with per-token positions (B·T). */
export function rope(x: Tensor, positions: Int32Array, tables: RopeTables): Tensor {
  if (x.ndim !== 4 || x.shape[3] !== tables.headDim)
    throw new Error(`rope: input ${fmtShape(x.shape)} is not (B, T, H, ${tables.headDim})`);
  const [b, t, h, d] = x.shape;
  if (positions.length !== b * t) throw new Error(`rope: ${positions.length} positions for ${b * t} tokens`);
  for (let i = 0; i < positions.length; i++) {
    if (positions[i] < 0 || positions[i] >= tables.maxPositions)
      throw new Error(`rope: position ${positions[i]} outside the table (0..${tables.maxPositions - 1})`);
  }
  const xd = x.contiguousData();
  const y = allocOut(xd, xd.length);
  const { cos, sin } = tablesAs(tables, xd);
  kernelsFor(xd).rope(xd, y, positions, cos, sin, b * t, h, d, 1);
  return record('rope', [x], { positions, cos, sin }, new Tensor(y, x.shape));
}

/** Tables in the precision of the data (float64 checks need float64 tables). */
function tablesAs(tables: RopeTables, like: FloatArray): { cos: FloatArray; sin: FloatArray } {
  if (like instanceof Float64Array && !(tables.cos instanceof Float64Array)) {
    return { cos: Float64Array.from(tables.cos), sin: Float64Array.from(tables.sin) };
  }
  return { cos: tables.cos, sin: tables.sin };
}

/** softmax(scale · x) over the last axis; with `causalShift` set, x is (…, Tq, Tk) and key j > q + shift is masked. */
export function softmax(x: Tensor, scale = 1, causalShift: number | null = null): Tensor {
  const cols = x.shape[x.ndim - 1];
  const xd = x.contiguousData();
  const rows = xd.length / cols;
  const y = allocLike(xd, xd.length);
  const causalRows = causalShift === null ? 0 : x.shape[x.ndim - 2];
  if (causalShift !== null && causalShift < 0) throw new Error('softmax: causalShift must be ≥ 0 (every query must see a key)');
  kernelsFor(xd).softmax(xd, y, rows, cols, scale, causalRows, causalShift ?? 0);
  const out = new Tensor(y, x.shape);
  return record('softmax', [x], { y: out, scale }, out);
}

/**
 * Scaled dot-product attention with grouped KV heads. q (B, Tq, Hq, D); k, v (B, Tk, Hkv, D); Hq a multiple
 * of Hkv (query head h reads KV head ⌊h / (Hq/Hkv)⌋). Causal: query i sees keys j ≤ i + (Tk − Tq).
 * Output (B, Tq, Hq, D). Works on the (B, T, H, D) layout directly through gemm leading dimensions.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { causal: boolean; scale?: number }): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || !sameShape(k.shape, v.shape) || q.shape[0] !== k.shape[0] || q.shape[3] !== k.shape[3]) {
    throw new Error(`attention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} are not (B,Tq,Hq,D), (B,Tk,Hkv,D)`);
  }
  const [B, Tq, Hq, D] = q.shape;
  const [, Tk, Hkv] = k.shape;
  if (Hq % Hkv !== 0) throw new Error(`attention: ${Hq} query heads are not a multiple of ${Hkv} KV heads`);
  if (opts.causal && Tk < Tq) throw new Error(`attention: causal attention needs at least as many keys (${Tk}) as queries (${Tq})`);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const qc = dense(q),
    kc = dense(k),
    vc = dense(v);
  const qd = qc.contiguousData();
  const probs = allocLike(qd, B * Hq * Tq * Tk); // (B, Hq, Tq, Tk), saved for backward
  const out = allocLike(qd, B * Tq * Hq * D); // (B, Tq, Hq, D)
  attentionForward(kernelsFor(qd), qd, kc.contiguousData(), vc.contiguousData(), out, probs, {
    B,
    Tq,
    Tk,
    Hq,
    Hkv,
    D,
    kvBatchStride: Tk * Hkv * D,
    scale,
    causal: opts.causal,
  });
  return record('attention', [q, k, v], { q: qc, k: kc, v: vc, probs, scale, causal: opts.causal }, new Tensor(out, q.shape));
}

/**
 * Mean cross-entropy of logits (N, V) against targets (N); targets equal to ignoreIndex are skipped.
 * Like PyTorch, the result is NaN when every target is ignored.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor {
  if (logits.ndim !== 2 || logits.shape[0] !== targets.length) {
    throw new Error(`crossEntropy: logits ${fmtShape(logits.shape)} do not match ${targets.length} targets (expected (N, V))`);
  }
  const [n, vocab] = logits.shape;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const t = targets[i];
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab)
      throw new Error(`crossEntropy: target ${t} at row ${i} is outside 0..${vocab - 1} (and is not the ignore index ${ignoreIndex})`);
    kept++;
  }
  const lc = dense(logits);
  const ld = lc.contiguousData();
  const lse = allocLike(ld, n);
  const total = kernelsFor(ld).crossEntropy(ld, targets, lse, n, vocab, ignoreIndex);
  const out = allocLike(ld, 1);
  out[0] = total / kept;
  return record('crossEntropy', [logits], { logits: lc, targets, lse, ignoreIndex, kept }, new Tensor(out, []));
}
