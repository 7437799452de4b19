/**
 * GGUF v3 writer (ggml's docs/gguf.md). Layout, all little-endian:
 *   magic "GGUF" · u32 version 3 · u64 tensor count · u64 metadata count
 *   metadata: string key · u32 value type · value   (string = u64 byte length + UTF-8 bytes;
 *             array = u32 element type · u64 count · elements)
 *   tensor infos: string name · u32 n_dims · u64 ne[n_dims] (ne[0] = the contiguous axis) · u32 ggml type ·
 *             u64 offset into the data section (a multiple of general.alignment)
 *   zero padding to the alignment, then the tensor data, each tensor padded to the alignment.
 * Tensors are produced one at a time while writing (peak memory: one tensor), into a temp file that is
 * renamed into place when complete.
 */
import { writeStreamAtomic } from '../../io/files.ts';

export const GGUF_ALIGNMENT = 32;

/** ggml tensor types lonas writes: [id, elements per block, bytes per block]. */
export const GGML_TYPES = {
  F32: [0, 1, 4],
  F16: [1, 1, 2],
  Q4_0: [2, 32, 18],
  Q4_1: [3, 32, 20],
  Q8_0: [8, 32, 34],
  BF16: [30, 1, 2],
} as const;
export type GgmlType = keyof typeof GGML_TYPES;

/** GGUF metadata value types. */
const T = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** A metadata value with its GGUF type made explicit (JS numbers do not say u32 vs f32). */
export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'i32[]' | 'f32[]'; value: ArrayLike<number> }
  | { type: 'string[]'; value: readonly string[] };

export const u32 = (value: number): GgufValue => ({ type: 'u32', value });
export const f32 = (value: number): GgufValue => ({ type: 'f32', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });

export interface GgufTensor {
  name: string;
  /** shape in row-major order as in safetensors, e.g. (out, in) for a weight; written reversed as ggml's ne */
  shape: readonly number[];
  type: GgmlType;
  /** the encoded bytes (called once, while writing) */
  bytes: () => Uint8Array;
}

export function tensorByteSize(shape: readonly number[], type: GgmlType): number {
  const [, block, blockBytes] = GGML_TYPES[type];
  const n = shape.reduce((a, b) => a * b, 1);
  if (shape[shape.length - 1] % block)
    throw new Error(`GGUF: a ${type} tensor needs rows that are a multiple of ${block}, got shape [${shape.join(', ')}]`);
  return (n / block) * blockBytes;
}

/** Append-only little-endian byte buffer for the header. */
class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  u8(v: number): void {
    this.push(Buffer.from([v]));
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  zeros(n: number): void {
    if (n > 0) this.push(Buffer.alloc(n));
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  const array = (elem: number, n: number, each: (i: number) => void) => {
    out.u32(T.ARRAY);
    out.u32(elem);
    out.u64(n);
    for (let i = 0; i < n; i++) each(i);
  };
  switch (v.type) {
    case 'u32':
      out.u32(T.UINT32);
      out.u32(v.value);
      break;
    case 'i32':
      out.u32(T.INT32);
      out.i32(v.value);
      break;
    case 'f32':
      out.u32(T.FLOAT32);
      out.f32(v.value);
      break;
    case 'u64':
      out.u32(T.UINT64);
      out.u64(v.value);
      break;
    case 'bool':
      out.u32(T.BOOL);
      out.u8(v.value ? 1 : 0);
      break;
    case 'string':
      out.u32(T.STRING);
      out.string(v.value);
      break;
    case 'i32[]': {
      const a = v.value;
      array(T.INT32, a.length, (i) => out.i32(a[i]));
      break;
    }
    case 'f32[]': {
      const a = v.value;
      array(T.FLOAT32, a.length, (i) => out.f32(a[i]));
      break;
    }
    case 'string[]': {
      const a = v.value;
      array(T.STRING, a.length, (i) => out.string(a[i]));
      break;
    }
  }
}

const pad = (n: number) => (GGUF_ALIGNMENT - (n % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;

/** Writes a GGUF v3 file atomically; returns its size in bytes. `metadata` keys are written in insertion order. */
export function writeGguf(path: string, metadata: Map<string, GgufValue>, tensors: GgufTensor[]): number {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF: tensor '${t.name}' is written twice`);
    names.add(t.name);
  }
  const head = new ByteSink();
  head.u32(0x46554747); // "GGUF"
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.size);
  for (const [key, value] of metadata) {
    head.string(key);
    writeValue(head, value);
  }
  let offset = 0;
  const sizes = tensors.map((t) => tensorByteSize(t.shape, t.type));
  tensors.forEach((t, i) => {
    head.string(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(GGML_TYPES[t.type][0]);
    head.u64(offset);
    offset += sizes[i] + pad(sizes[i]);
  });
  head.zeros(pad(head.length));
  writeStreamAtomic(path, (put) => {
    put(head.bytes());
    tensors.forEach((t, i) => {
      const b = t.bytes();
      if (b.length !== sizes[i])
        throw new Error(
          `GGUF: tensor '${t.name}' produced ${b.length} bytes, its shape [${t.shape.join(', ')}] as ${t.type} needs ${sizes[i]}`,
        );
      put(b);
      put(new Uint8Array(pad(b.length)));
    });
  });
  return head.length + offset;
}
