/**
 * GPTQ (Frantar et al.; AutoGPTQ's `fasterquant` + `Quantizer`, spec.md §7) for one (out, in) weight given
 * H = 2/n Σ x xᵀ of its calibration inputs. Columns are quantised one at a time (optionally in descending
 * diag(H) order), each column's error propagated to the remaining columns with the inverse-Hessian Cholesky
 * factor, inside blocks of `blockSize` and lazily between blocks. Asymmetric, per output row and group of
 * `groupSize` inputs: scale = (max − min) / maxq over the group with 0 included, zero = round(−min / scale),
 * so a zero weight maps to q = zero and dequantises to exactly 0.
 *
 * Computed in float64 (the golden fixture's float64 run gives PyTorch's float32 codes); the column loop runs on the
 * native kernel (src/kernels/gptq.ts: the twin's operations inside a block, a dgemm between blocks). `keepZeros` is the SQFT-compatible variant
 * for sparse weights: after every update the pruned positions are reset to 0.
 */
import { choleskyInverseUpper } from '../kernels/linalg.ts';
import { findParams, gptqColumns } from '../kernels/gptq.ts';
import type { GptqColumnsJob } from '../kernels/gptq.ts';
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
 * Hp[a, b] = H[perm[a], perm[b]] for H (n, n) in place: each row's columns gathered through a row buffer, then the
 * rows moved along the cycles of perm (no second n × n matrix: 970 MB at n = 11008).
 */
function permuteSymmetric(H: Float64Array, n: number, perm: Int32Array): void {
  const row = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const base = r * n;
    for (let b = 0; b < n; b++) row[b] = H[base + perm[b]];
    H.set(row, base);
  }
  const done = new Uint8Array(n);
  for (let s = 0; s < n; s++) {
    if (done[s]) continue;
    row.set(H.subarray(s * n, s * n + n)); // row a receives row perm[a]: follow the cycle from s
    let a = s;
    for (; perm[a] !== s; a = perm[a]) {
      H.copyWithin(a * n, perm[a] * n, perm[a] * n + n);
      done[a] = 1;
    }
    H.set(row, a * n);
    done[a] = 1;
  }
}

/**
 * Dead inputs, the quantisation order and U from H (in, in). `factor` overwrites the damped, permuted H with U
 * (default: LAPACK; tests pass the TypeScript twin to compare). `prepareHessianInPlace` works in H itself (the
 * returned U is H), `prepareHessian` on a copy.
 */
export function prepareHessianInPlace(
  H: Float64Array,
  inF: number,
  actOrder: boolean,
  percDamp = 0.01,
  factor: (h: Float64Array, n: number) => void = inverseHessianFactor,
): PreparedHessian {
  const dead = new Uint8Array(inF);
  for (let j = 0; j < inF; j++)
    if (H[j * inF + j] === 0) {
      H[j * inF + j] = 1;
      dead[j] = 1;
    }
  let perm = Int32Array.from({ length: inF }, (_, j) => j);
  if (actOrder) {
    perm = Int32Array.from([...perm].sort((a, b) => H[b * inF + b] - H[a * inF + a] || a - b));
    permuteSymmetric(H, inF, perm); // (in, in) in quantisation order
  }
  let diagMean = 0;
  for (let j = 0; j < inF; j++) diagMean += H[j * inF + j] / inF;
  const damp = percDamp * diagMean;
  for (let j = 0; j < inF; j++) H[j * inF + j] += damp;
  factor(H, inF);
  return { inF, perm, U: H, dead };
}

export function prepareHessian(
  hIn: ArrayLike<number>,
  inF: number,
  actOrder: boolean,
  percDamp = 0.01,
  factor: (h: Float64Array, n: number) => void = inverseHessianFactor,
): PreparedHessian {
  return prepareHessianInPlace(Float64Array.from(hIn), inF, actOrder, percDamp, factor);
}

/**
 * Quantises w (out, in) in float64 with the Hessian h (in, in) or a prepared one. Inputs are not modified.
 * `columns` runs the column loop (default: the native kernel; tests pass the TypeScript twin to compare).
 */
export function gptqQuantize(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  h: ArrayLike<number> | PreparedHessian,
  o: GptqOptions,
  columns: (job: GptqColumnsJob) => void = gptqColumns,
): QuantizedWeight {
  const B = o.blockSize ?? 128,
    gs = o.groupSize > 0 ? o.groupSize : inF;
  if (!Number.isInteger(o.bits) || o.bits < 2 || o.bits > 8) throw new Error(`GPTQ: bits must be 2..8, got ${o.bits}`);
  const prep = 'perm' in h ? h : prepareHessian(h, inF, o.actOrder, o.percDamp);
  const { perm, U, dead } = prep;
  // (out, in) in quantisation order: Wp[:, k] = W[:, perm[k]] (dead inputs zeroed), Mp its nonzeros before that
  const Wp = new Float64Array(out * inF),
    Mp = o.keepZeros ? new Uint8Array(out * inF) : null;
  for (let r = 0; r < out; r++)
    for (let k = 0; k < inF; k++) {
      const v = w[r * inF + perm[k]];
      Wp[r * inF + k] = dead[perm[k]] ? 0 : v;
      if (Mp) Mp[r * inF + k] = v !== 0 ? 1 : 0;
    }
  const groups = Math.ceil(inF / gs);
  const scales = new Float32Array(groups * out),
    zeros = new Float32Array(groups * out),
    codesP = new Uint8Array(out * inF);
  columns({ w: Wp, u: U, mask: Mp, out, inF, bits: o.bits, groupSize: gs, blockSize: B, codes: codesP, scales, zeros });
  // back to the original column order; g_idx[c] = (position of c in the quantisation order) / groupSize
  const gIdx = new Int32Array(inF);
  for (let k = 0; k < inF; k++) gIdx[perm[k]] = Math.floor(k / gs);
  let q = codesP; // already in the original order when perm is the identity
  if (perm.some((p, k) => p !== k)) {
    q = new Uint8Array(out * inF);
    for (let r = 0; r < out; r++) for (let k = 0; k < inF; k++) q[r * inF + perm[k]] = codesP[r * inF + k];
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
