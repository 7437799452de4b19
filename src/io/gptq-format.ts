/**
 * GPTQ checkpoint packing (AutoGPTQ layout): integer codes as a little-endian bit stream in int32 words.
 *  - qweight (in·bits/32, out): for each output column, the codes of consecutive INPUT rows; for 4 bits,
 *    row r sits in bits 4·(r mod 8) of word ⌊r/8⌋. 3-bit rows straddle words exactly as AutoGPTQ's pack.
 *  - qzeros (groups, out·bits/32): for each group, the zeros of consecutive OUTPUT columns, stored as
 *    zero − 1 in the v1 "gptq" format (zero as is in "gptq_v2").
 * What the codes mean (QuantizedWeight, the INT4 grid) is src/nn/quantized-weight.ts.
 */

export type GptqFormat = 'gptq' | 'gptq_v2';

/** Code widths lonas packs, loads and runs (`lonas quantize --bits` and quantization_config.bits alike). */
export const GPTQ_BITS: readonly number[] = [2, 3, 4, 8];
export const GPTQ_BITS_TEXT = '2, 3, 4 or 8';

/** Packs `n` codes read as values(k) for k < n into ⌈n·bits/32⌉ words (little-endian bit stream). */
function packStream(n: number, bits: number, value: (k: number) => number, words: Int32Array, stride: number, offset: number): void {
  const mask = (1 << bits) - 1;
  for (let k = 0; k < n; k++) {
    const v = value(k) & mask;
    const bit = k * bits,
      w = Math.floor(bit / 32),
      s = bit % 32;
    words[w * stride + offset] |= v << s;
    if (s + bits > 32) words[(w + 1) * stride + offset] |= v >>> (32 - s);
  }
}

function unpackStream(
  n: number,
  bits: number,
  words: Int32Array,
  stride: number,
  offset: number,
  put: (k: number, v: number) => void,
): void {
  const mask = (1 << bits) - 1;
  for (let k = 0; k < n; k++) {
    const bit = k * bits,
      w = Math.floor(bit / 32),
      s = bit % 32;
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
  for (let g = 0; g < groups; g++)
    unpackStream(out, bits, words.subarray(g * cols, (g + 1) * cols), 1, 0, (o, v) => (zeros[g * out + o] = v + shift));
  return zeros;
}
