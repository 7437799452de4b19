/**
 * GPTQ's column loop (AutoGPTQ `fasterquant` once the inverse-Hessian factor is known), float64. The native kernel
 * (native/gptq.cc) repeats the twin's operations one for one inside each block (a multiply and a subtract per
 * update, in the same order, no FMA) and does the lazy update between blocks as one dgemm, so its weights agree
 * with the twin's to float64 rounding and its codes, scales and zeros match them (tests); the twin below is the
 * oracle in tests and the fallback without the addon.
 */
import { quantCode, roundHalfEven } from '../util/round.ts';
import { nativeKernels } from './index.ts';

/** scale/zero of one row segment, as AutoGPTQ's Quantizer.find_params (asymmetric, min/max with 0 included, no MSE search). */
export function findParams(values: ArrayLike<number>, maxq: number): { scale: number; zero: number } {
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

/** One GPTQ column loop: the operands of `gptqColumns`. */
export interface GptqColumnsJob {
  /** (out, in) float64, columns in quantisation order; overwritten with the error-propagated weights */
  w: Float64Array;
  /** (in, in) upper factor U of the damped inverse Hessian (Uᵀ U = H⁻¹), in the same order */
  u: Float64Array;
  /** (out, in) 1 where a weight may be nonzero (keepZeros), or null */
  mask: Uint8Array | null;
  out: number;
  inF: number;
  bits: number;
  /** inputs per group, ≥ 1 (inF for one group per row) */
  groupSize: number;
  blockSize: number;
  /** outputs: codes (out, in) in quantisation order, scales and zeros (⌈in / groupSize⌉, out) */
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Float32Array;
}

/**
 * The reference twin of the native `gptqColumns`. Per block [i1, i2) of blockSize columns, per column: at a group
 * start the row's scale/zero (findParams over the group); the code; the error e = (w − q̂) / U[c, c], propagated
 * inside the block (w[:, c:i2] −= e · U[c, c:i2]); after the block the lazy update w[:, i2:] −= E · U[i1:i2, i2:],
 * term by term in k order. With a mask, the masked positions are reset to 0 after every update.
 */
export function referenceGptqColumns(j: GptqColumnsJob): void {
  const { w: Wp, u: U, mask: Mp, out, inF, codes, scales, zeros } = j;
  const maxq = 2 ** j.bits - 1,
    B = j.blockSize,
    gs = j.groupSize;
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
        codes[r * inF + col] = code;
        const e = (wv - rowScale[r] * (code - rowZero[r])) / d;
        err[r * B + (col - i1)] = e;
        for (let c = col; c < i2; c++) Wp[r * inF + c] -= e * U[col * inF + c]; // inside the block
        if (Mp) for (let c = col + 1; c < i2; c++) Wp[r * inF + c] *= Mp[r * inF + c];
      }
    }
    // lazy batch update of the columns after the block: W[:, i2:] −= Err · U[i1:i2, i2:]
    for (let r = 0; r < out; r++) {
      for (let k = i1; k < i2; k++) {
        const e = err[r * B + (k - i1)];
        for (let c = i2; c < inF; c++) Wp[r * inF + c] -= e * U[k * inF + c];
      }
      if (Mp) for (let c = i2; c < inF; c++) Wp[r * inF + c] *= Mp[r * inF + c];
    }
  }
}

/** GPTQ's column loop on the native kernel when the addon is loaded, else on the twin. */
export function gptqColumns(j: GptqColumnsJob): void {
  const native = nativeKernels();
  if (!native) {
    referenceGptqColumns(j);
    return;
  }
  native.gptqColumns(j.w, j.u, j.mask, j.out, j.inF, j.bits, j.groupSize, j.blockSize, j.codes, j.scales, j.zeros);
}
