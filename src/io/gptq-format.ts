/**
 * GPTQ checkpoint packing (AutoGPTQ layout): integer codes as a little-endian bit stream in int32 words.
 *  - qweight (in·bits/32, out): for each output column, the codes of consecutive INPUT rows; for 4 bits,
 *    row r sits in bits 4·(r mod 8) of word ⌊r/8⌋. 3-bit rows straddle words exactly as AutoGPTQ's pack.
 *  - qzeros (groups, out·bits/32): for each group, the zeros of consecutive OUTPUT columns, stored as
 *    zero − 1 in the v1 "gptq" format (zero as is in "gptq_v2").
 */
import { roundHalfEven } from '../tensor/ops.ts';

export type GptqFormat = 'gptq' | 'gptq_v2';

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



/** Packs `n` codes read as values(k) for k < n into ⌈n·bits/32⌉ words (little-endian bit stream). */
function packStream(n: number, bits: number, value: (k: number) => number, words: Int32Array, stride: number, offset: number): void {
  const mask = (1 << bits) - 1;
  for (let k = 0; k < n; k++) {
    const v = value(k) & mask;
    const bit = k * bits, w = Math.floor(bit / 32), s = bit % 32;
    words[w * stride + offset] |= v << s;
    if (s + bits > 32) words[(w + 1) * stride + offset] |= v >>> (32 - s);
  }
}

function unpackStream(n: number, bits: number, words: Int32Array, stride: number, offset: number, put: (k: number, v: number) => void): void {
  const mask = (1 << bits) - 1;
  for (let k = 0; k < n; k++) {
    const bit = k * bits, w = Math.floor(bit / 32), s = bit % 32;
    let v = words[w * stride + offset] >>> s;
    if (s + bits > 32) v |= words[(w + 1) * stride + offset] << (32 - s);
    put(k, v & mask);
  }
}

/**
 * Words needed for n codes: ⌈n·bits/32⌉. AutoGPTQ requires widths that fill whole words (multiples of 32
 * inputs for its kernels); lonas also writes other widths, padding the last word with zero bits — such
 * checkpoints load in lonas but other GPTQ tools may refuse them.
 */
export function packedWords(n: number, bits: number): number {
  return Math.ceil((n * bits) / 32);
}

/** codes q (out, in) → qweight (in·bits/32, out). */
export function packQweight(q: Uint8Array, out: number, inF: number, bits: number): Int32Array {
  const rows = packedWords(inF, bits);
  const words = new Int32Array(rows * out);
  for (let o = 0; o < out; o++) packStream(inF, bits, (j) => q[o * inF + j], words, out, o);
  return words;
}

export function unpackQweight(words: Int32Array, out: number, inF: number, bits: number): Uint8Array {
  const q = new Uint8Array(out * inF);
  for (let o = 0; o < out; o++) unpackStream(inF, bits, words, out, o, (j, v) => (q[o * inF + j] = v));
  return q;
}

/** zeros (groups, out) → qzeros (groups, out·bits/32). */
export function packQzeros(zeros: Float32Array, groups: number, out: number, bits: number, format: GptqFormat): Int32Array {
  const cols = packedWords(out, bits);
  const words = new Int32Array(groups * cols);
  const shift = format === 'gptq' ? 1 : 0;
  for (let g = 0; g < groups; g++) packStream(out, bits, (o) => zeros[g * out + o] - shift, words.subarray(g * cols, (g + 1) * cols), 1, 0);
  return words;
}

export function unpackQzeros(words: Int32Array, groups: number, out: number, bits: number, format: GptqFormat): Float32Array {
  const cols = packedWords(out, bits);
  const zeros = new Float32Array(groups * out);
  const shift = format === 'gptq' ? 1 : 0;
  for (let g = 0; g < groups; g++) unpackStream(out, bits, words.subarray(g * cols, (g + 1) * cols), 1, 0, (o, v) => (zeros[g * out + o] = v + shift));
  return zeros;
}
