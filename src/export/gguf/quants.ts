/**
 * ggml block quantizers, bit-exact ports of llama.cpp's reference quantizers (ggml-quants.c
 * quantize_row_{q8_0,q4_0,q4_1}_ref, the ones llama-quantize and gguf-py use to create files). Every step
 * rounds to float32 as the C code does (Math.fround after each operation), and the block scales go to IEEE
 * half with round-to-nearest-even (GGML_FP32_TO_FP16). Blocks cover 32 consecutive values of one row.
 *   q8_0 block (34 B): f16 d = amax/127 · 32 × i8 roundf(x/d)
 *   q4_0 block (18 B): f16 d = max/−8 (max: the value of largest magnitude) · 16 B nibbles min(15, trunc(x/d + 8.5)),
 *                      byte j = element j (low nibble) | element j+16 (high nibble)
 *   q4_1 block (20 B): f16 d = (max−min)/15 · f16 m = min · 16 B nibbles min(15, trunc((x−min)/d + 0.5))
 */
import { f16ToF32, f32ToF16 } from '../../io/safetensors.ts';
import type { GgmlType } from './writer.ts';

export const QK = 32;
const fr = Math.fround;
const half = new Uint16Array(1);
const single = new Float32Array(1);

function putF16(out: DataView, at: number, x: number): void {
  single[0] = x;
  f32ToF16(single, half);
  out.setUint16(at, half[0], true);
}

/** C's roundf: half away from zero. */
const roundf = (x: number) => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);

function blockQ8_0(x: Float32Array, s: number, out: DataView, at: number): void {
  let amax = 0;
  for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[s + j]));
  const d = fr(amax / 127),
    id = d ? fr(1 / d) : 0;
  putF16(out, at, d);
  for (let j = 0; j < QK; j++) out.setInt8(at + 2 + j, roundf(fr(x[s + j] * id)));
}

function blockQ4_0(x: Float32Array, s: number, out: DataView, at: number): void {
  let amax = 0,
    max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[s + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = fr(max / -8),
    id = d ? fr(1 / d) : 0;
  putF16(out, at, d);
  const code = (v: number) => Math.min(15, Math.trunc(fr(fr(v * id) + 8.5)));
  for (let j = 0; j < QK / 2; j++) out.setUint8(at + 2 + j, code(x[s + j]) | (code(x[s + j + QK / 2]) << 4));
}

function blockQ4_1(x: Float32Array, s: number, out: DataView, at: number): void {
  let min = Infinity,
    max = -Infinity;
  for (let j = 0; j < QK; j++) {
    const v = x[s + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const d = fr(fr(max - min) / 15),
    id = d ? fr(1 / d) : 0;
  putF16(out, at, d);
  putF16(out, at + 2, min);
  const code = (v: number) => Math.min(15, Math.trunc(fr(fr(fr(v - min) * id) + 0.5)));
  for (let j = 0; j < QK / 2; j++) out.setUint8(at + 4 + j, code(x[s + j]) | (code(x[s + j + QK / 2]) << 4));
}

const BLOCKS = { Q8_0: [blockQ8_0, 34], Q4_0: [blockQ4_0, 18], Q4_1: [blockQ4_1, 20] } as const;
export type BlockType = keyof typeof BLOCKS;
export const isBlockType = (t: GgmlType): t is BlockType => t in BLOCKS;

/** Quantizes row-major float32 data whose rows are `cols` long (a multiple of 32) into `type` blocks. */
export function quantizeBlocks(x: Float32Array, cols: number, type: BlockType): Uint8Array {
  if (cols % QK || x.length % cols) throw new Error(`${type}: rows of ${cols} values are not a whole number of ${QK}-value blocks`);
  const [block, bytes] = BLOCKS[type];
  const n = x.length / QK;
  const out = new Uint8Array(n * bytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < n; b++) block(x, b * QK, view, b * bytes);
  return out;
}

/** The values the blocks stand for (llama.cpp's dequantize_row_*), for error reports and tests. */
export function dequantizeBlocks(bytes: Uint8Array, type: BlockType): Float32Array {
  const size = BLOCKS[type][1],
    n = bytes.length / size;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = new Uint16Array(1),
    f = new Float32Array(1);
  const f16 = (at: number) => {
    h[0] = v.getUint16(at, true);
    f16ToF32(h, f);
    return f[0];
  };
  const out = new Float32Array(n * QK);
  for (let b = 0; b < n; b++) {
    const at = b * size,
      o = b * QK;
    if (type === 'Q8_0') {
      const d = f16(at);
      for (let j = 0; j < QK; j++) out[o + j] = fr(d * v.getInt8(at + 2 + j));
      continue;
    }
    const d = f16(at),
      m = type === 'Q4_1' ? f16(at + 2) : 0,
      qs = at + (type === 'Q4_1' ? 4 : 2);
    for (let j = 0; j < QK / 2; j++) {
      const byte = v.getUint8(qs + j);
      const lo = byte & 15,
        hi = byte >> 4;
      out[o + j] = type === 'Q4_0' ? fr(d * (lo - 8)) : fr(fr(d * lo) + m);
      out[o + j + QK / 2] = type === 'Q4_0' ? fr(d * (hi - 8)) : fr(fr(d * hi) + m);
    }
  }
  return out;
}

/** float32 → IEEE half bits (round-to-nearest-even), as GGUF F16 tensors store them. */
export function toF16Bytes(x: Float32Array): Uint8Array {
  const h = new Uint16Array(x.length);
  f32ToF16(x, h);
  return new Uint8Array(h.buffer);
}
