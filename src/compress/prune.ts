/**
 * Unstructured and N:M pruning (spec.md §6).
 *  - wanda:     score S_ij = |W_ij| · sqrt(n_j), n_j the running mean over calibration sequences of Σ_tokens x_j²,
 *               accumulated exactly as the reference WrappedGPT.add_batch (one sequence per call).
 *  - magnitude: score S_ij = |W_ij| (no calibration), the classic baseline.
 * Unstructured: in each output row, the ⌊in · ratio⌋ lowest scores are zeroed (stable sort: ties broken by
 * lower input index first). N:M: in each group of M consecutive inputs of a row, the N highest scores stay.
 * Weights are not updated otherwise.
 */
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import type { LinearLike } from '../nn/modules.ts';
import { calibrateLayerwise } from './calibrate.ts';
import type { LayerStream } from './calibrate.ts';

export interface PruneOptions {
  method: 'wanda' | 'magnitude';
  /** fraction zeroed per row (unstructured); ignored with nm */
  sparsity: number;
  /** keep n of every m consecutive inputs (e.g. 2:4) */
  nm?: { n: number; m: number } | null;
  targets: ProjectionName[];
  onProgress?: (layer: number, layers: number) => void;
  /** the model's layers are streamed in and out (compress/stream.ts) */
  stream?: LayerStream;
}

export interface PruneReport {
  /** per pruned weight: HF name, zeros, size */
  modules: { name: string; zeros: number; size: number }[];
  sparsity: number;
}

/** The (out, in) weight of a projection (base weight under an adapter). */
function weightOf(m: LinearLike): Float32Array {
  return m.baseTensors()[0].data as Float32Array;
}

/** Marks which weights to prune in one (out, in) matrix from its scores. Returns the mask (1 = pruned). */
export function pruneMask(
  scores: Float64Array | Float32Array,
  out: number,
  inF: number,
  sparsity: number,
  nm: { n: number; m: number } | null,
): Uint8Array {
  const mask = new Uint8Array(out * inF);
  if (nm) {
    if (inF % nm.m !== 0) throw new Error(`N:M pruning: input width ${inF} is not a multiple of M = ${nm.m}`);
    const idx = new Array<number>(nm.m);
    for (let r = 0; r < out; r++) {
      for (let g = 0; g < inF; g += nm.m) {
        for (let k = 0; k < nm.m; k++) idx[k] = g + k;
        idx.sort((a, b) => scores[r * inF + a] - scores[r * inF + b] || a - b);
        for (let k = 0; k < nm.m - nm.n; k++) mask[r * inF + idx[k]] = 1;
      }
    }
    return mask;
  }
  const prune = Math.floor(inF * sparsity);
  if (prune === 0) return mask;
  // The `prune` lowest of the stable order (score, then index): every score below the prune-th smallest t, then the
  // lowest-indexed of the scores equal to t. Quickselect finds t in O(in) per row (a full sort was 17 s of a 7B layer).
  const work = new Float64Array(inF);
  for (let r = 0; r < out; r++) {
    const row = r * inF;
    for (let j = 0; j < inF; j++) {
      const v = scores[row + j];
      if (Number.isNaN(v))
        throw new Error(`pruning: row ${r} of a (${out}, ${inF}) weight has NaN scores (NaN weights or calibration activations)`);
      work[j] = v;
    }
    const t = kthSmallest(work, prune - 1);
    let below = 0;
    for (let j = 0; j < inF; j++) if (scores[row + j] < t) below++;
    let ties = prune - below;
    for (let j = 0; j < inF; j++) {
      const v = scores[row + j];
      if (v < t) mask[row + j] = 1;
      else if (v === t && ties > 0) {
        mask[row + j] = 1;
        ties--;
      }
    }
  }
  return mask;
}

/** The k-th smallest value (0-based) of `a`, which is reordered (Hoare quickselect, median-of-three pivot; no NaN). */
function kthSmallest(a: Float64Array, k: number): number {
  let lo = 0,
    hi = a.length - 1;
  while (hi > lo) {
    const x = a[lo],
      y = a[(lo + hi) >>> 1],
      z = a[hi];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z)); // median of three
    let i = lo,
      j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const s = a[i];
        a[i++] = a[j];
        a[j--] = s;
      }
    }
    // a[lo..j] ≤ pivot, a[i..hi] ≥ pivot, everything strictly between equals the pivot
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return pivot;
  }
  return a[k];
}

function applyMask(w: Float32Array, mask: Uint8Array): number {
  let zeros = 0;
  for (let k = 0; k < w.length; k++) {
    if (mask[k]) w[k] = 0;
    if (w[k] === 0) zeros++;
  }
  return zeros;
}

/** Prunes the target projections of every layer in place; Wanda calibrates on `samples` layer by layer. */
export function pruneModel(model: LlamaModel, samples: Int32Array[], o: PruneOptions): PruneReport {
  if (!o.nm && !(o.sparsity > 0 && o.sparsity < 1)) throw new Error(`--sparsity must be in (0, 1), got ${o.sparsity}`);
  if (o.nm && !(o.nm.n >= 1 && o.nm.n < o.nm.m)) throw new Error(`--nm ${o.nm.n}:${o.nm.m}: need 1 ≤ N < M`);
  const report: PruneReport = { modules: [], sparsity: 0 };
  const pruneLayer = (i: number, norms: Map<ProjectionName, { sq: Float64Array }> | null) => {
    for (const p of o.targets) {
      const m = model.layers[i].proj[p];
      const w = weightOf(m);
      const [out, inF] = m.baseTensors()[0].shape;
      const scores = new Float64Array(out * inF);
      const sq = norms?.get(p)?.sq;
      const norm = sq ? sq.map(Math.sqrt) : new Float64Array(inF).fill(1); // (in) √n_j, 1 for magnitude
      for (let r = 0; r < out; r++) {
        for (let j = 0; j < inF; j++) scores[r * inF + j] = Math.abs(w[r * inF + j]) * norm[j];
      }
      const zeros = applyMask(w, pruneMask(scores, out, inF, o.sparsity, o.nm ?? null));
      report.modules.push({ name: m.baseTensors()[0].name ?? `layers.${i}.${p}`, zeros, size: out * inF });
    }
  };
  if (o.method === 'magnitude') {
    for (let i = 0; i < model.layers.length; i++) {
      o.stream?.enter(i);
      pruneLayer(i, null);
      o.stream?.leave(i);
      o.onProgress?.(i + 1, model.layers.length);
    }
  } else {
    let stats = new Map<ProjectionName, { sq: Float64Array; n: number }>();
    calibrateLayerwise(model, samples, {
      beforeLayer: () => {
        stats = new Map();
        return (proj, x, tokens, inF) => {
          if (!o.targets.includes(proj)) return;
          const s = stats.get(proj) ?? { sq: new Float64Array(inF), n: 0 };
          stats.set(proj, s);
          // WrappedGPT.add_batch with one sequence: scaler *= n/(n+1); n += 1; scaler += ‖x_j‖² / n
          const keep = s.n / (s.n + 1);
          s.n += 1;
          for (let j = 0; j < inF; j++) s.sq[j] *= keep;
          for (let t = 0; t < tokens; t++) for (let j = 0; j < inF; j++) s.sq[j] += (x[t * inF + j] * x[t * inF + j]) / s.n;
        };
      },
      compressLayer: (i) => pruneLayer(i, stats),
      onProgress: o.onProgress,
      stream: o.stream,
    });
  }
  const zeros = report.modules.reduce((a, m) => a + m.zeros, 0),
    size = report.modules.reduce((a, m) => a + m.size, 0);
  report.sparsity = zeros / size;
  return report;
}
