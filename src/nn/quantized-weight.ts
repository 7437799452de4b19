/**
 * A group-wise quantised weight (GPTQ / RTN) and its grid: integer codes q with per-(group, output) scales and
 * zeros, W = scale · (q − zero). How a checkpoint packs the codes is src/io/gptq-format.ts.
 */
import { roundHalfEven } from '../tensor/ops.ts';
import type { QuantParams } from '../tensor/index.ts';

/** The integer code of w: clamp(round(w / scale) + zero, 0, maxq), rounding half to even as torch. */
export function quantCode(w: number, scale: number, zero: number, maxq: number): number {
  return Math.min(maxq, Math.max(0, roundHalfEven(w / scale) + zero));
}

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

/** Dequantised weights (out, in): scale · (q − zero) of each element's group. */
export function dequantize(qw: QuantizedWeight): Float32Array {
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
