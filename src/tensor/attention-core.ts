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
export function attentionForward(
  kern: Kernels,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  out: FloatArray,
  probs: FloatArray,
  d: AttentionDims,
): void {
  const { B, Tq, Tk, Hq, Hkv, D, kvBatchStride } = d;
  const group = Hq / Hkv;
  const scores = probs; // computed in place: softmax may alias
  if (Tq === 1) {
    attendOneQuery(kern, q, k, v, out, probs, d);
    return;
  }
  const blocks = causalBlocks(d);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kOff = b * kvBatchStride + Math.floor(h / group) * D;
      const sOff = (b * Hq + h) * Tq * Tk;
      // scores (rows, keys) = q_bh (rows, D) · k_bhᵀ (D, keys), only the keys a causal block can see
      for (const [r0, r1, keys] of blocks)
        kern.gemm(
          false,
          true,
          r1 - r0,
          keys,
          D,
          1,
          q,
          b * Tq * Hq * D + r0 * Hq * D + h * D,
          Hq * D,
          k,
          kOff,
          Hkv * D,
          0,
          scores,
          sOff + r0 * Tk,
          Tk,
        );
    }
  }
  if (d.keyStart) maskPaddingKeys(scores, d);
  kern.softmax(scores, probs, B * Hq * Tq, Tk, d.scale, d.causal ? Tq : 0, Tk - Tq); // masked (never computed) entries → 0
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const vOff = b * kvBatchStride + Math.floor(h / group) * D;
      const pOff = (b * Hq + h) * Tq * Tk;
      // out_bh (rows, D) = P (rows, keys) · v_bh (keys, D)
      for (const [r0, r1, keys] of blocks)
        kern.gemm(
          false,
          false,
          r1 - r0,
          D,
          keys,
          1,
          probs,
          pOff + r0 * Tk,
          Tk,
          v,
          vOff,
          Hkv * D,
          0,
          out,
          b * Tq * Hq * D + r0 * Hq * D + h * D,
          Hq * D,
        );
    }
  }
}

/**
 * One query position per row (decode): the Hq/Hkv query heads that share a KV head are consecutive rows of q
 * (and of probs and out), so each (b, KV head) is one product of `group` rows instead of `group` one-row ones.
 */
function attendOneQuery(
  kern: Kernels,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  out: FloatArray,
  probs: FloatArray,
  d: AttentionDims,
): void {
  const { B, Tk, Hq, Hkv, D, kvBatchStride } = d;
  const group = Hq / Hkv;
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < Hkv; g++) {
      // scores (group, Tk) = q_bg (group, D) · k_bgᵀ (D, Tk)
      kern.gemm(
        false,
        true,
        group,
        Tk,
        D,
        1,
        q,
        (b * Hq + g * group) * D,
        D,
        k,
        b * kvBatchStride + g * D,
        Hkv * D,
        0,
        probs,
        (b * Hq + g * group) * Tk,
        Tk,
      );
    }
  }
  if (d.keyStart) maskPaddingKeys(probs, d);
  kern.softmax(probs, probs, B * Hq, Tk, d.scale, d.causal ? 1 : 0, Tk - 1);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < Hkv; g++) {
      // out_bg (group, D) = P (group, Tk) · v_bg (Tk, D)
      kern.gemm(
        false,
        false,
        group,
        D,
        Tk,
        1,
        probs,
        (b * Hq + g * group) * Tk,
        Tk,
        v,
        b * kvBatchStride + g * D,
        Hkv * D,
        0,
        out,
        (b * Hq + g * group) * D,
        D,
      );
    }
  }
}

/**
 * Causal attention only needs, for query rows [r0, r1), the keys [0, r1 + Tk − Tq): splitting long query
 * ranges into blocks of 32 rows skips most of the masked upper triangle (~45% of the work at 512 tokens).
 * Returns [r0, r1, keys] triples (one block covering everything when not causal or short).
 */
export function causalBlocks(d: Pick<AttentionDims, 'Tq' | 'Tk' | 'causal'>): [number, number, number][] {
  const BLOCK = 32;
  if (!d.causal || d.Tq <= BLOCK) return [[0, d.Tq, d.Tk]];
  const out: [number, number, number][] = [];
  for (let r0 = 0; r0 < d.Tq; r0 += BLOCK) {
    const r1 = Math.min(r0 + BLOCK, d.Tq);
    out.push([r0, r1, Math.min(d.Tk, r1 + d.Tk - d.Tq)]);
  }
  return out;
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
