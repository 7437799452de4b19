/**
 * safetensors reader/writer. Format: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the data.
 *
 * Reading validates the whole header first (sizes, offsets inside the file, no overlaps, known dtypes)
 * and then reads each tensor straight into its destination array (no whole-file buffer, so loading a
 * large checkpoint does not double peak memory). F16/BF16 are widened to float32 at load time, unless a
 * BF16 tensor is read as its raw bits (`readBf16Bits`) to stay in bfloat16.
 * Writing goes to a temporary file that is renamed into place, so a crash never leaves a corrupt file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { bf16ToF32 } from '../tensor/bf16.ts';
import { writeStreamAtomic } from './files.ts';

export type StDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
/** Bytes per element of each safetensors dtype. */
export const DTYPE_BYTES: Record<StDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorEntry {
  dtype: StDType;
  shape: number[];
  /** byte range relative to the start of the data section */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(file: string, problem: string, fix = 'the file is not a valid safetensors file; re-export or re-download it') {
    super(`${file}: ${problem} (${fix})`);
    this.name = 'SafetensorsError';
  }
}

if (endianness() !== 'LE') throw new Error('lonas reads safetensors only on little-endian machines');

/** An open safetensors file with a validated header; tensors are read on demand. */
export class SafetensorsFile {
  readonly entries = new Map<string, TensorEntry>();
  readonly metadata: Record<string, string> = {};
  private fd: number;
  private dataStart = 0;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'check the path');
    }
    try {
      this.parseHeader();
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  private parseHeader(): void {
    const fileSize = fstatSync(this.fd).size;
    if (fileSize < 8) throw new SafetensorsError(this.path, `file is ${fileSize} bytes, too short for a header`);
    const lenBuf = Buffer.alloc(8);
    readSync(this.fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > fileSize) {
      throw new SafetensorsError(this.path, `header length ${headerLen} does not fit a file of ${fileSize} bytes (truncated?)`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(this.fd, headerBuf, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      throw new SafetensorsError(this.path, `header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header))
      throw new SafetensorsError(this.path, 'header is not a JSON object');
    this.dataStart = 8 + headerLen;
    const dataSize = fileSize - this.dataStart;
    const ranges: [number, number, string][] = [];
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
          if (typeof v !== 'string') throw new SafetensorsError(this.path, `__metadata__.${k} is not a string`);
          this.metadata[k] = v;
        }
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const where = `tensor '${name}'`;
      if (typeof e?.dtype !== 'string' || !(e.dtype in DTYPE_BYTES))
        throw new SafetensorsError(
          this.path,
          `${where} has unsupported dtype ${JSON.stringify(e?.dtype)}`,
          `supported: ${Object.keys(DTYPE_BYTES).join(', ')}`,
        );
      const dtype = e.dtype as StDType;
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
        throw new SafetensorsError(this.path, `${where} has an invalid shape ${JSON.stringify(e.shape)}`);
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1]) {
        throw new SafetensorsError(this.path, `${where} has invalid data_offsets ${JSON.stringify(offs)}`);
      }
      const shape = e.shape as number[];
      const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
      if (offs[1] - offs[0] !== expected) {
        throw new SafetensorsError(
          this.path,
          `${where}: shape [${shape.join(', ')}] ${dtype} needs ${expected} bytes but data_offsets span ${offs[1] - offs[0]}`,
        );
      }
      if (offs[1] > dataSize)
        throw new SafetensorsError(
          this.path,
          `${where} ends at byte ${offs[1]} but the data section has ${dataSize} bytes (file truncated?)`,
        );
      this.entries.set(name, { dtype, shape, begin: offs[0], end: offs[1] });
      ranges.push([offs[0], offs[1], name]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i][0] < ranges[i - 1][1])
        throw new SafetensorsError(this.path, `tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap`);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `has no tensor named '${name}'`, 'check the checkpoint matches the model config');
    return e;
  }

  /** `into.length` bytes of a tensor's data from byte `offset` of that tensor. */
  private readBytes(e: TensorEntry, into: Uint8Array, offset = 0): void {
    let done = 0;
    while (done < into.length) {
      const n = readSync(this.fd, into, done, Math.min(into.length - done, 1 << 30), this.dataStart + e.begin + offset + done);
      if (n <= 0) throw new SafetensorsError(this.path, 'unexpected end of file while reading tensor data');
      done += n;
    }
  }

  /** A floating tensor as float32 (F16/BF16 widened, F64 narrowed). */
  readFloat32(name: string): { data: Float32Array; shape: number[] } {
    const e = this.entry(name);
    const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
    const out = new Float32Array(n);
    if (e.dtype === 'F32') {
      this.readBytes(e, new Uint8Array(out.buffer));
    } else if (e.dtype === 'BF16' || e.dtype === 'F16') {
      const half = new Uint16Array(n);
      this.readBytes(e, new Uint8Array(half.buffer));
      if (e.dtype === 'BF16') bf16ToF32(half, out);
      else f16ToF32(half, out);
    } else if (e.dtype === 'F64') {
      const d = new Float64Array(n);
      this.readBytes(e, new Uint8Array(d.buffer));
      out.set(d);
    } else {
      throw new SafetensorsError(this.path, `tensor '${name}' is ${e.dtype}, expected a floating type`);
    }
    return { data: out, shape: e.shape };
  }

  /** The raw bit patterns of a BF16 tensor (no conversion), for weights kept in bfloat16. */
  readBf16Bits(name: string): { bits: Uint16Array; shape: number[] } {
    const e = this.entry(name);
    if (e.dtype !== 'BF16') throw new SafetensorsError(this.path, `tensor '${name}' is ${e.dtype}, expected BF16`);
    const bits = new Uint16Array((e.end - e.begin) / 2);
    this.readBytes(e, new Uint8Array(bits.buffer));
    return { bits, shape: e.shape };
  }

  /** A floating tensor as float64 (exact for F32/F16/BF16/F64). */
  readFloat64(name: string): { data: Float64Array; shape: number[] } {
    const e = this.entry(name);
    if (e.dtype === 'F64') {
      const d = new Float64Array((e.end - e.begin) / 8);
      this.readBytes(e, new Uint8Array(d.buffer));
      return { data: d, shape: e.shape };
    }
    const { data, shape } = this.readFloat32(name);
    return { data: Float64Array.from(data), shape };
  }

  /** An integer tensor as int32 (I64 values must fit). */
  readInt32(name: string): { data: Int32Array; shape: number[] } {
    const e = this.entry(name);
    const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
    if (e.dtype === 'I32') {
      const out = new Int32Array(n);
      this.readBytes(e, new Uint8Array(out.buffer));
      return { data: out, shape: e.shape };
    }
    if (e.dtype === 'I64') {
      const big = new BigInt64Array(n);
      this.readBytes(e, new Uint8Array(big.buffer));
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        if (big[i] > 2147483647n || big[i] < -2147483648n)
          throw new SafetensorsError(this.path, `tensor '${name}' value ${big[i]} does not fit int32`);
        out[i] = Number(big[i]);
      }
      return { data: out, shape: e.shape };
    }
    throw new SafetensorsError(this.path, `tensor '${name}' is ${e.dtype}, expected I32 or I64`);
  }

  /** Raw bytes of a tensor (for dtypes lonas does not convert, e.g. packed INT4 in I32). */
  readRaw(name: string): Uint8Array {
    const e = this.entry(name);
    const out = new Uint8Array(e.end - e.begin);
    this.readBytes(e, out);
    return out;
  }

  /** `length` raw bytes of a tensor from byte `offset` of its data (a sample, without reading it all). */
  readRawSlice(name: string, offset: number, length: number): Uint8Array {
    const e = this.entry(name);
    if (offset < 0 || length < 0 || offset + length > e.end - e.begin)
      throw new SafetensorsError(
        this.path,
        `bytes ${offset}..${offset + length} are outside tensor '${name}' (${e.end - e.begin} bytes)`,
        'a bug in the caller',
      );
    const out = new Uint8Array(length);
    this.readBytes(e, out, offset);
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** IEEE half → f32 (subnormals, infinities and NaN included). */
export function f16ToF32(src: Uint16Array, dst: Float32Array): void {
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) dst[i] = sign * frac * 2 ** -24;
    else if (exp === 31) dst[i] = frac ? NaN : sign * Infinity;
    else dst[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
}

/** f32 → IEEE half with round-to-nearest-even (as torch's `.half()`): overflow → ±inf, tiny → subnormal/±0. */
export function f32ToF16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const roundShift = (m: number, shift: number) => {
    if (shift > 31) return 0;
    const q = m >>> shift,
      rem = m & ((1 << shift) - 1),
      half = 1 << (shift - 1);
    return rem > half || (rem === half && q & 1) ? q + 1 : q;
  };
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000,
      exp = (b >>> 23) & 0xff,
      mant = b & 0x7fffff;
    if (exp === 0xff) {
      dst[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) dst[i] = sign | 0x7c00;
    else if (e <= 0)
      dst[i] = sign | roundShift(mant | 0x800000, 14 - e); // subnormal (or 0); may round up to the smallest normal
    else {
      const kept = (e << 10) | (mant >>> 13),
        rem = mant & 0x1fff;
      dst[i] = sign | (kept + (rem > 0x1000 || (rem === 0x1000 && kept & 1) ? 1 : 0)); // a carry bumps the exponent (→ inf at the top)
    }
  }
}

/** f32 → bf16 with round-to-nearest-even (as torch's `.to(torch.bfloat16)`); NaN stays NaN. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) dst[i] = (b >>> 16) | 0x40;
    else dst[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
}

export interface TensorToWrite {
  dtype: 'F32' | 'F64' | 'BF16' | 'F16' | 'I32' | 'I64' | 'U8';
  shape: readonly number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;
}

/** The bytes of a tensor as stored: F16/BF16 given as float32 data are rounded to nearest even; other data as is. */
export function tensorBytes(name: string, t: TensorToWrite): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  let bytes: Uint8Array;
  if ((t.dtype === 'BF16' || t.dtype === 'F16') && t.data instanceof Float32Array) {
    const h = new Uint16Array(n);
    (t.dtype === 'BF16' ? f32ToBf16 : f32ToF16)(t.data, h);
    bytes = new Uint8Array(h.buffer);
  } else {
    bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }
  if (bytes.length !== n * DTYPE_BYTES[t.dtype])
    throw new Error(
      `safetensors: '${name}' has ${bytes.length} bytes, shape [${t.shape.join(', ')}] ${t.dtype} needs ${n * DTYPE_BYTES[t.dtype]}`,
    );
  return bytes;
}

/** A tensor's name, dtype and shape: what a header needs before any data is written. */
export type TensorSpec = Pick<TensorToWrite, 'dtype' | 'shape'>;

/**
 * The file's first bytes (u64 header length, header JSON padded to 8 bytes) for tensors written in the
 * given order, and each tensor's byte offset from the start of the file.
 */
export function safetensorsHeader(
  specs: Record<string, TensorSpec>,
  metadata: Record<string, string> = {},
): { head: Uint8Array; offsets: Map<string, number> } {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const starts = new Map<string, number>();
  let offset = 0;
  for (const [name, t] of Object.entries(specs)) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    starts.set(name, offset);
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const head = new Uint8Array(8 + headerBytes.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  head.set(headerBytes, 8);
  const offsets = new Map([...starts].map(([name, o]) => [name, head.length + o]));
  return { head, offsets };
}

/** Writes tensors (in the given order) atomically: temp file, then rename. BF16/F16 take Float32Array data (rounded) or raw Uint16Array bits. */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = {}): void {
  const blobs = Object.entries(tensors).map(([name, t]) => tensorBytes(name, t));
  const { head } = safetensorsHeader(tensors, metadata);
  writeStreamAtomic(path, (put) => {
    put(head);
    for (const b of blobs) put(b);
  });
}
