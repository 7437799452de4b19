/**
 * Scaled dot-product attention on raw buffers, shared by the differentiable `attention` op and the
 * KV-cache inference path. Layouts: q/out (B, Tq, Hq, D); k/v (B, ·, Hkv, D) where batch row b starts at
 * b·kvBatchStride (a cache preallocates more positions than it holds). Every (b, h) product runs through
 * gemm with leading dimensions, so no transposed copies are made. Query head h reads KV head ⌊h/(Hq/Hkv)⌋.
 */
import type { FloatArray, Kernels } from '../kernels/api.ts';

export interface AttentionDims {
  B: number;
  Tq: number;
  /** keys visible (the first Tk positions of each KV row) */
  Tk: number;
  Hq: number;
  Hkv: number;
  D: number;
  /** elements between batch rows of k/v (Tk·Hkv·D when dense) */
  kvBatchStride: number;
  scale: number;
  /** query i (0-based among the Tq) sees keys j ≤ i + (Tk − Tq) */
  causal: boolean;
  /** per batch row, keys before this index are padding and masked (left-padded batches); null: none */
  keyStart?: Int32Array | null;
}

/** Fills probs (B, Hq, Tq, Tk) with the attention weights and out (B, Tq, Hq, D) with the result. */
export function attentionForward(kern: Kernels, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, probs: FloatArray, d: AttentionDims): void {
  const { B, Tq, Tk, Hq, Hkv, D, kvBatchStride } = d;
  const group = Hq / Hkv;
  const scores = probs; // computed in place: softmax may alias
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kOff = b * kvBatchStride + Math.floor(h / group) * D;
      // scores (Tq, Tk) = q_bh (Tq, D) · k_bhᵀ (D, Tk)
      kern.gemm(false, true, Tq, Tk, D, 1, q, b * Tq * Hq * D + h * D, Hq * D, k, kOff, Hkv * D, 0, scores, (b * Hq + h) * Tq * Tk, Tk);
    }
  }
  if (d.keyStart) maskPaddingKeys(scores, d);
  kern.softmax(scores, probs, B * Hq * Tq, Tk, d.scale, d.causal ? Tq : 0, Tk - Tq);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const vOff = b * kvBatchStride + Math.floor(h / group) * D;
      // out_bh (Tq, D) = P (Tq, Tk) · v_bh (Tk, D)
      kern.gemm(false, false, Tq, D, Tk, 1, probs, (b * Hq + h) * Tq * Tk, Tk, v, vOff, Hkv * D, 0, out, b * Tq * Hq * D + h * D, Hq * D);
    }
  }
}

/**
 * Gives padding keys a score of −1e30: exp underflows to exactly 0 for every query that sees a real key,
 * and padding queries (which see only padding) get finite uniform weights instead of NaN (−∞ − (−∞)),
 * so no NaN reaches the values that real queries multiply by zero.
 */
function maskPaddingKeys(scores: FloatArray, d: AttentionDims): void {
  const { B, Tq, Tk, Hq } = d;
  for (let b = 0; b < B; b++) {
    const start = d.keyStart![b];
    if (start <= 0) continue;
    if (start >= Tk) throw new Error(`attention: batch row ${b} has no real key (padding start ${start} ≥ ${Tk} keys)`);
    for (let r = 0; r < Hq * Tq; r++) scores.fill(-1e30, (b * Hq * Tq + r) * Tk, (b * Hq * Tq + r) * Tk + start);
  }
}
