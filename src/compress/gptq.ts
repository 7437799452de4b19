/**
 * GPTQ (Frantar et al.; AutoGPTQ's `fasterquant` + `Quantizer`, spec.md §7) for one (out, in) weight given
 * H = 2/n Σ x xᵀ of its calibration inputs. Columns are quantised one at a time (optionally in descending
 * diag(H) order), each column's error propagated to the remaining columns with the inverse-Hessian Cholesky
 * factor, inside blocks of `blockSize` and lazily between blocks. Asymmetric, per output row and group of
 * `groupSize` inputs: scale = (max − min) / maxq over the group with 0 included, zero = round(−min / scale),
 * so a zero weight maps to q = zero and dequantises to exactly 0.
 *
 * Computed in float64 (the golden fixture's float64 run gives PyTorch's float32 codes). `keepZeros` is the
 * SQFT-compatible variant for sparse weights: after every update the pruned positions are reset to 0.
 */
import { roundHalfEven } from '../tensor/index.ts';
import { choleskyInverseUpper } from '../kernels/linalg.ts';
import type { QuantizedWeight } from '../nn/quantized-weight.ts';

import { quantCode } from '../nn/quantized-weight.ts';

export { dequantize, quantCode } from '../nn/quantized-weight.ts';
export type { QuantizedWeight } from '../nn/quantized-weight.ts';

export interface GptqOptions {
  bits: number;
  /** inputs per quantisation group; ≤ 0 means one group per row */
  groupSize: number;
  actOrder: boolean;
  blockSize?: number;
  percDamp?: number;
  /** keep every zero weight exactly zero (sparse bases) */
  keepZeros?: boolean;
}

/** scale/zero of one row segment, as AutoGPTQ's Quantizer.find_params (asymmetric, no MSE search). */
function findParams(values: ArrayLike<number>, maxq: number): { scale: number; zero: number } {
  let lo = 0,
    hi = 0;
  for (let k = 0; k < values.length; k++) {
    lo = Math.min(lo, values[k]);
    hi = Math.max(hi, values[k]);
  }
  if (lo === 0 && hi === 0) {
    lo = -1;
    hi = 1;
  }
  const scale = (hi - lo) / maxq;
  return { scale, zero: roundHalfEven(-lo / scale) };
}

/**
 * Overwrites h (n, n) with the upper Cholesky factor U of h⁻¹ (Uᵀ U = h⁻¹), as
 * torch.linalg.cholesky(cholesky_inverse(cholesky(H)), upper=True): LAPACK through the native addon, else the
 * TypeScript twin (src/kernels/linalg.ts). Returns h.
 */
export function inverseHessianFactor(h: Float64Array, n: number): Float64Array {
  try {
    choleskyInverseUpper(h, n);
  } catch (e) {
    const why = (e as Error).message.replace(/^choleskyInverseUpper: /, '');
    throw new Error(`GPTQ: the Hessian is not usable: ${why} (raise the damping or use more calibration data)`, { cause: e });
  }
  return h;
}

/** What GPTQ derives from a Hessian alone: shared by every weight that sees the same inputs (q/k/v, gate/up). */
export interface PreparedHessian {
  inF: number;
  /** quantisation order of the input columns */
  perm: Int32Array;
  /** upper Cholesky factor of the damped inverse Hessian, in `perm` order */
  U: Float64Array;
  /** inputs that never fired (their weights are zeroed, as the reference does) */
  dead: Uint8Array;
}

/**
 * Dead inputs, the quantisation order and U from H (in, in). `factor` overwrites the damped, permuted H with U
 * (default: LAPACK; tests pass the TypeScript twin to compare).
 */
export function prepareHessian(
  hIn: ArrayLike<number>,
  inF: number,
  actOrder: boolean,
  percDamp = 0.01,
  factor: (h: Float64Array, n: number) => void = inverseHessianFactor,
): PreparedHessian {
  const H = Float64Array.from(hIn);
  const dead = new Uint8Array(inF);
  for (let j = 0; j < inF; j++)
    if (H[j * inF + j] === 0) {
      H[j * inF + j] = 1;
      dead[j] = 1;
    }
  let perm = Int32Array.from({ length: inF }, (_, j) => j);
  if (actOrder) perm = Int32Array.from([...perm].sort((a, b) => H[b * inF + b] - H[a * inF + a] || a - b));
  let Hp = H; // (in, in) in quantisation order: H itself unless act-order permutes it
  if (actOrder) {
    Hp = new Float64Array(inF * inF);
    for (let a = 0; a < inF; a++) for (let b = 0; b < inF; b++) Hp[a * inF + b] = H[perm[a] * inF + perm[b]];
  }
  let diagMean = 0;
  for (let j = 0; j < inF; j++) diagMean += Hp[j * inF + j] / inF;
  const damp = percDamp * diagMean;
  for (let j = 0; j < inF; j++) Hp[j * inF + j] += damp;
  factor(Hp, inF);
  return { inF, perm, U: Hp, dead };
}

/** Quantises w (out, in) in float64 with the Hessian h (in, in) or a prepared one. Inputs are not modified. */
export function gptqQuantize(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  h: ArrayLike<number> | PreparedHessian,
  o: GptqOptions,
): QuantizedWeight {
  const maxq = 2 ** o.bits - 1,
    B = o.blockSize ?? 128,
    gs = o.groupSize > 0 ? o.groupSize : inF;
  if (!Number.isInteger(o.bits) || o.bits < 2 || o.bits > 8) throw new Error(`GPTQ: bits must be 2..8, got ${o.bits}`);
  const prep = 'perm' in h ? h : prepareHessian(h, inF, o.actOrder, o.percDamp);
  const { perm, U, dead } = prep;
  const W = Float64Array.from(w);
  const keep = o.keepZeros ? Uint8Array.from(W, (v) => (v !== 0 ? 1 : 0)) : null;
  for (let j = 0; j < inF; j++) if (dead[j]) for (let r = 0; r < out; r++) W[r * inF + j] = 0;
  // permuted copies: Wp[:, k] = W[:, perm[k]]
  const Wp = new Float64Array(out * inF),
    Mp = keep ? new Uint8Array(out * inF) : null;
  for (let r = 0; r < out; r++)
    for (let k = 0; k < inF; k++) {
      Wp[r * inF + k] = W[r * inF + perm[k]];
      if (Mp) Mp[r * inF + k] = keep![r * inF + perm[k]];
    }

  const groups = Math.ceil(inF / gs);
  const scales = new Float32Array(groups * out),
    zeros = new Float32Array(groups * out);
  const codesP = new Uint8Array(out * inF);
  const rowScale = new Float64Array(out),
    rowZero = new Float64Array(out);
  const err = new Float64Array(out * B);
  for (let i1 = 0; i1 < inF; i1 += B) {
    const i2 = Math.min(i1 + B, inF);
    for (let col = i1; col < i2; col++) {
      if (col % gs === 0) {
        const g = col / gs;
        for (let r = 0; r < out; r++) {
          const p = findParams(Wp.subarray(r * inF + col, r * inF + Math.min(col + gs, inF)), maxq);
          rowScale[r] = p.scale;
          rowZero[r] = p.zero;
          scales[g * out + r] = p.scale;
          zeros[g * out + r] = p.zero;
        }
      }
      const d = U[col * inF + col];
      for (let r = 0; r < out; r++) {
        const wv = Wp[r * inF + col];
        const code = quantCode(wv, rowScale[r], rowZero[r], maxq);
        codesP[r * inF + col] = code;
        const e = (wv - rowScale[r] * (code - rowZero[r])) / d;
        err[r * B + (col - i1)] = e;
        for (let j = col; j < i2; j++) Wp[r * inF + j] -= e * U[col * inF + j]; // inside the block
        if (Mp) for (let j = col + 1; j < i2; j++) Wp[r * inF + j] *= Mp[r * inF + j];
      }
    }
    // lazy batch update of the columns after the block: W[:, i2:] −= Err · U[i1:i2, i2:]
    for (let r = 0; r < out; r++) {
      for (let k = i1; k < i2; k++) {
        const e = err[r * B + (k - i1)];
        if (e === 0) continue;
        for (let j = i2; j < inF; j++) Wp[r * inF + j] -= e * U[k * inF + j];
      }
      if (Mp) for (let j = i2; j < inF; j++) Wp[r * inF + j] *= Mp[r * inF + j];
    }
  }
  // back to the original column order; g_idx[c] = (position of c in the quantisation order) / groupSize
  const q = new Uint8Array(out * inF),
    gIdx = new Int32Array(inF);
  for (let k = 0; k < inF; k++) {
    gIdx[perm[k]] = Math.floor(k / gs);
    for (let r = 0; r < out; r++) q[r * inF + perm[k]] = codesP[r * inF + k];
  }
  return { out, inF, bits: o.bits, groupSize: gs, q, scales, zeros, gIdx };
}

/** Round-to-nearest with the same group-wise quantiser (the baseline GPTQ must beat). */
export function rtnQuantize(w: ArrayLike<number>, out: number, inF: number, bits: number, groupSize: number): QuantizedWeight {
  const maxq = 2 ** bits - 1,
    gs = groupSize > 0 ? groupSize : inF,
    groups = Math.ceil(inF / gs);
  const scales = new Float32Array(groups * out),
    zeros = new Float32Array(groups * out),
    q = new Uint8Array(out * inF);
  const gIdx = Int32Array.from({ length: inF }, (_, j) => Math.floor(j / gs));
  for (let r = 0; r < out; r++) {
    for (let g = 0; g < groups; g++) {
      const seg = Array.from({ length: Math.min(gs, inF - g * gs) }, (_, k) => w[r * inF + g * gs + k]);
      const p = findParams(seg, maxq);
      scales[g * out + r] = p.scale;
      zeros[g * out + r] = p.zero;
      seg.forEach((v, k) => (q[r * inF + g * gs + k] = quantCode(v, p.scale, p.zero, maxq)));
    }
  }
  return { out, inF, bits, groupSize: gs, q, scales, zeros, gIdx };
}
