/**
 * A group-wise quantised weight (GPTQ / RTN) and its grid: integer codes q with per-(group, output) scales and
 * zeros, W = scale · (q − zero). How a checkpoint packs the codes is src/io/gptq-format.ts.
 */
import { quantCode } from '../util/round.ts';
import type { QuantParams } from '../tensor/index.ts';
import { nativeKernels } from '../kernels/index.ts';

export { quantCode };

/** A group-wise quantised (out, in) weight with its integer codes unpacked. */
export interface QuantizedWeight {
  out: number;
  inF: number;
  bits: number;
  groupSize: number;
  /** integer codes (out, in) */
  q: Uint8Array;
  /** (groups, out) */
  scales: Float32Array;
  /** (groups, out), integers in [0, maxq] */
  zeros: Float32Array;
  /** group of each input column */
  gIdx: Int32Array;
}

/** A quantised weight's grid without its codes (what a checkpoint's qzeros, scales and g_idx say). */
export type QuantGrid = Omit<QuantizedWeight, 'q'>;

/** Dequantised weights (out, in): scale · (q − zero) of each element's group (native/gptq.cc when loaded, else the twin). */
export function dequantize(qw: QuantizedWeight): Float32Array {
  const native = nativeKernels();
  if (!native) return referenceDequantize(qw);
  const w = new Float32Array(qw.out * qw.inF);
  native.gptqDequantize(qw.q, qw.scales, qw.zeros, qw.gIdx, qw.out, qw.inF, w);
  return w;
}

/** The reference twin of the native `gptqDequantize`: in float64, rounded once to float32. */
export function referenceDequantize(qw: QuantizedWeight): Float32Array {
  const { out, inF, q, scales, zeros, gIdx } = qw;
  const w = new Float32Array(out * inF);
  for (let r = 0; r < out; r++) {
    for (let j = 0; j < inF; j++) {
      const g = gIdx[j] * out + r;
      w[r * inF + j] = scales[g] * (q[r * inF + j] - zeros[g]);
    }
  }
  return w;
}

/** The fixed quantiser of a quantised weight, as fakeQuant takes it. */
export function quantParamsOf(qw: QuantizedWeight): QuantParams {
  return { scales: qw.scales, zeros: qw.zeros, gIdx: qw.gIdx, maxq: 2 ** qw.bits - 1, out: qw.out };
}

/**
 * The first `o` outputs and `i` inputs of a quantised (out, in) weight on its own grid: codes (o, i), scales
 * and zeros (⌈i/groupSize⌉, o), g_idx (i). Null when a kept input column belongs to a group past
 * ⌈i/groupSize⌉ (act-order: a checkpoint's scales hold ⌈in/groupSize⌉ groups, so such a slice has no GPTQ layout).
 */
export function sliceQuantized(qw: QuantizedWeight, o: number, i: number): QuantizedWeight | null {
  if (o === qw.out && i === qw.inF) return qw;
  const grid = sliceGrid(qw, o, i);
  if (!grid) return null;
  const q = new Uint8Array(o * i);
  for (let r = 0; r < o; r++) q.set(qw.q.subarray(r * qw.inF, r * qw.inF + i), r * i);
  return { ...grid, q };
}

/** sliceQuantized's grid alone (scales and zeros (⌈i/groupSize⌉, o), g_idx (i)), for planning what a slice writes. */
export function sliceGrid(grid: QuantGrid, o: number, i: number): QuantGrid | null {
  if (o === grid.out && i === grid.inF) return grid;
  if (!sliceHasLayout(grid, i)) return null;
  const groups = Math.ceil(i / grid.groupSize); // a per-channel grid (groupSize = in) keeps its one group
  const scales = new Float32Array(groups * o),
    zeros = new Float32Array(groups * o);
  for (let g = 0; g < groups; g++) {
    scales.set(grid.scales.subarray(g * grid.out, g * grid.out + o), g * o);
    zeros.set(grid.zeros.subarray(g * grid.out, g * grid.out + o), g * o);
  }
  return { out: o, inF: i, bits: grid.bits, groupSize: grid.groupSize, scales, zeros, gIdx: grid.gIdx.slice(0, i) };
}

/** Whether the first `i` inputs of `qw` use only groups below ⌈i/groupSize⌉ (always so without act-order). */
export function sliceHasLayout(qw: Pick<QuantGrid, 'groupSize' | 'gIdx'>, i: number): boolean {
  const groups = Math.ceil(i / qw.groupSize);
  for (let j = 0; j < i; j++) if (qw.gIdx[j] >= groups) return false;
  return true;
}

/** What requantising float weights onto a fixed grid did: codes that moved, and the error against the float weights. */
export interface RequantStats {
  /** weights requantised, and those whose code differs from the grid's own codes */
  weights: number;
  codesChanged: number;
  /** max and sum of |dequantised new code − float weight| */
  maxAbsError: number;
  sumAbsError: number;
}

export const noRequantStats = (): RequantStats => ({ weights: 0, codesChanged: 0, maxAbsError: 0, sumAbsError: 0 });

/**
 * New codes for float weights `w` (out, in) on the fixed grid of `grid` (its scales, zeros and g_idx), as a
 * GPTQ base keeps its format through a merge; `stats` accumulates the change (codes against grid.q) and
 * the added error.
 */
export function requantize(grid: QuantizedWeight, w: Float32Array, stats: RequantStats = noRequantStats()): QuantizedWeight {
  const { out, inF, scales, zeros, gIdx, bits } = grid;
  const q = new Uint8Array(out * inF),
    maxq = 2 ** bits - 1;
  for (let o = 0; o < out; o++)
    for (let j = 0; j < inF; j++) {
      const k = o * inF + j,
        g = gIdx[j] * out + o;
      q[k] = quantCode(w[k], scales[g], zeros[g], maxq);
      const err = Math.abs(Math.fround(scales[g] * (q[k] - zeros[g])) - w[k]);
      if (err > stats.maxAbsError) stats.maxAbsError = err;
      stats.sumAbsError += err;
      if (q[k] !== grid.q[k]) stats.codesChanged++;
    }
  stats.weights += out * inF;
  return { ...grid, q };
}

/**
 * Weights of `qw` that are exactly 0 (code at the zero point); with `kept` (a weight on qw's grid sliced to
 * (kept.out, kept.inF), sliceQuantized), those that are still 0 in `kept`.
 */
export function zeroWeights(qw: QuantizedWeight, kept: QuantizedWeight = qw): number {
  let n = 0;
  for (let r = 0; r < kept.out; r++)
    for (let j = 0; j < kept.inF; j++) {
      const g = qw.gIdx[j];
      if (qw.q[r * qw.inF + j] === qw.zeros[g * qw.out + r] && kept.q[r * kept.inF + j] === kept.zeros[g * kept.out + r]) n++;
    }
  return n;
}
