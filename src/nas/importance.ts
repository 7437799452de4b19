/**
 * Importance of each MLP intermediate channel, for reordering before super-network training (issue #4):
 * elastic MLP width keeps the first w' channels (spec.md §2), so putting the most important channels first
 * makes the narrow sub-networks start from a better function.
 *
 * Channel j of a layer contributes  down[:, j] · act(gate_j · x) · (up_j · x)  to the MLP output, where
 * x = γ ⊙ n is the post-attention RMSNorm output (n has unit RMS, γ the norm's weight).
 *
 *  - magnitude (no data):  s_j = ‖γ ⊙ gate_j‖₂ · ‖γ ⊙ up_j‖₂ · ‖down[:, j]‖₂
 *      The product, not a sum, of the three norms: the contribution is bilinear in gate_j·x and up_j·x
 *      (SiLU(g) ≈ g/2 … g) and linear in down[:, j], so its size scales with the product — a channel with a
 *      near-zero down column (or gate/up row) contributes nearly nothing however large the other two are,
 *      which a sum would miss, and the product is invariant to rescaling one matrix, which a sum is not.
 *      Folding γ in measures the rows against the inputs they actually see (per-dimension scale γ_i).
 *  - activation (calibration tokens):  s_j = ‖down[:, j]‖₂ · sqrt(mean_t a_tj²),  a = act(gate x) ⊙ (up x)
 *      the input of down_proj; s_j² is exactly the mean squared norm of channel j's contribution to the
 *      MLP output (Wanda's column score, spec.md §6, summed over the column). Inputs come from the shared
 *      layer-wise calibration loop (src/compress/calibrate.ts) with nothing compressed.
 */
import type { LlamaModel } from '../models/llama/model.ts';
import { baseLinearOf } from '../models/llama/model.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { Tensor } from '../tensor/index.ts';
import { calibrateLayerwise } from '../compress/calibrate.ts';
import { orderByScore, permuteMlpChannels } from '../adapters/channel-order.ts';
import type { ChannelOrder } from '../adapters/channel-order.ts';

export const REORDER_MODES = ['magnitude', 'activation'] as const;
export type ReorderMode = (typeof REORDER_MODES)[number];

/**
 * The stored base weight (out, in) of a projection, whatever wraps it; a bf16 weight through a transient
 * float32 copy (exact), so scoring does not widen the model.
 */
function baseWeight(m: LinearLike, what: string): Tensor {
  const base = baseLinearOf(m, what);
  return base.weightStore.bf16?.toTensor() ?? base.weight;
}

/** ‖γ ⊙ W[r, :]‖₂ for every row r of W (out, in); γ (in) or null for 1. */
function rowNorms(w: Tensor, gamma: ArrayLike<number> | null): Float64Array {
  const [out, inF] = w.shape;
  const d = w.contiguousData();
  const norms = new Float64Array(out);
  for (let r = 0; r < out; r++) {
    let s = 0;
    for (let i = 0; i < inF; i++) {
      const v = d[r * inF + i] * (gamma ? gamma[i] : 1);
      s += v * v;
    }
    norms[r] = Math.sqrt(s);
  }
  return norms;
}

/** ‖W[:, c]‖₂ for every column c of W (out, in). */
function colNorms(w: Tensor): Float64Array {
  const [out, inF] = w.shape;
  const d = w.contiguousData();
  const sq = new Float64Array(inF);
  for (let r = 0; r < out; r++) for (let c = 0; c < inF; c++) sq[c] += d[r * inF + c] * d[r * inF + c];
  return sq.map(Math.sqrt);
}

/** Per layer (intermediate_size): ‖γ ⊙ gate_j‖ · ‖γ ⊙ up_j‖ · ‖down[:, j]‖. */
export function magnitudeScores(model: LlamaModel): Float64Array[] {
  return model.layers.map((layer) => {
    const gamma = layer.postAttentionNorm.weight.contiguousData();
    const g = rowNorms(baseWeight(layer.proj.gate_proj, 'gate_proj'), gamma);
    const u = rowNorms(baseWeight(layer.proj.up_proj, 'up_proj'), gamma);
    const d = colNorms(baseWeight(layer.proj.down_proj, 'down_proj'));
    return g.map((v, j) => v * u[j] * d[j]);
  });
}

/**
 * Per layer (intermediate_size): ‖down[:, j]‖ · RMS over the calibration tokens of down_proj's input j.
 * `samples` are token sequences (BOS included), run one at a time through the unchanged model.
 */
export function activationScores(model: LlamaModel, samples: Int32Array[]): Float64Array[] {
  const sumSq = model.config.layers.map((s) => new Float64Array(s.intermediateSize));
  const tokens = new Array<number>(model.layers.length).fill(0);
  calibrateLayerwise(model, samples, {
    beforeLayer: (l) => (proj, x, n, inF) => {
      if (proj !== 'down_proj') return;
      const acc = sumSq[l]; // x: (n, inF) = act(gate x) ⊙ (up x)
      for (let t = 0; t < n; t++) for (let j = 0; j < inF; j++) acc[j] += x[t * inF + j] * x[t * inF + j];
      tokens[l] += n;
    },
    compressLayer: () => {},
  });
  return model.layers.map((layer, l) => {
    const d = colNorms(baseWeight(layer.proj.down_proj, 'down_proj'));
    return d.map((v, j) => v * Math.sqrt(sumSq[l][j] / Math.max(tokens[l], 1)));
  });
}

/** Descending importance per layer: the order that puts the most important channels first. */
export function importanceOrder(scores: Float64Array[]): ChannelOrder {
  return scores.map((s) => orderByScore(s));
}

/**
 * Reorders the model's MLP channels in place by importance (most important first) and returns the order.
 * Call before adapters are attached. `samples` (token sequences) are needed for `activation` only.
 */
export function reorderByImportance(model: LlamaModel, mode: ReorderMode, samples: Int32Array[] = []): ChannelOrder {
  if (mode === 'activation' && samples.length === 0)
    throw new Error('activation-aware channel reordering needs calibration samples (training examples)');
  const order = importanceOrder(mode === 'magnitude' ? magnitudeScores(model) : activationScores(model, samples));
  permuteMlpChannels(model, order);
  return order;
}
