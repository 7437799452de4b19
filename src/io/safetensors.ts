/**
 * safetensors reader/writer. Format: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the data.
 *
 * Reading validates the whole header first (sizes, offsets inside the file, no overlaps, known dtypes)
 * and then reads each tensor straight into its destination array (no whole-file buffer, so loading a
 * large checkpoint does not double peak memory). F16/BF16 are widened to float32 at load time through a
 * small staging buffer (F16 through a 65536-entry table, BF16 by a shift), unless a
 * BF16 tensor is read as its raw bits (`readBf16Bits`) to stay in bfloat16.
 * Writing goes to a temporary file that is renamed into place, so a crash never leaves a corrupt file; the
 * header is planned first and the tensors are streamed after it (writeSafetensorsStreamed).
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

/** Bytes of the buffer F16/BF16/F64 tensors are widened through (readFloat32). */
const STAGING_BYTES = 1 << 20;

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

  /**
   * A floating tensor as float32 (F16/BF16 widened, F64 narrowed). A dtype other than F32 is read through a
   * fixed 1 MiB staging buffer, so only the result is ever whole in memory. `into`: a buffer of that length to fill
   * (every element is written) instead of a new one.
   */
  readFloat32(name: string, into?: Float32Array): { data: Float32Array; shape: number[] } {
    const e = this.entry(name);
    const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
    if (into && into.length !== n)
      throw new Error(`readFloat32: '${name}' has ${n} values, the buffer ${into.length} (a bug in the caller)`);
    const out = into ?? new Float32Array(n);
    this.readFloatInto(name, e, out);
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

  /** A floating tensor as float64 (exact for F32/F16/BF16/F64), through the staging buffer as readFloat32. */
  readFloat64(name: string): { data: Float64Array; shape: number[] } {
    const e = this.entry(name);
    const out = new Float64Array((e.end - e.begin) / DTYPE_BYTES[e.dtype]);
    this.readFloatInto(name, e, out);
    return { data: out, shape: e.shape };
  }

  /** Reads a floating tensor into `out` (its element count): bytes straight in when the dtypes agree, else chunk by chunk. */
  private readFloatInto(name: string, e: TensorEntry, out: Float32Array | Float64Array): void {
    if (e.dtype !== 'F32' && e.dtype !== 'F64' && e.dtype !== 'BF16' && e.dtype !== 'F16')
      throw new SafetensorsError(this.path, `tensor '${name}' is ${e.dtype}, expected a floating type`);
    if ((e.dtype === 'F32' && out instanceof Float32Array) || (e.dtype === 'F64' && out instanceof Float64Array)) {
      this.readBytes(e, new Uint8Array(out.buffer));
      return;
    }
    const width = DTYPE_BYTES[e.dtype],
      chunk = STAGING_BYTES / width,
      n = out.length;
    const staging = new Uint8Array(Math.min(n, chunk) * width);
    const half = e.dtype === 'BF16' || e.dtype === 'F16';
    const widened = half && out instanceof Float64Array ? new Float32Array(Math.min(n, chunk)) : null; // halves widen to f32 first
    for (let start = 0; start < n; start += chunk) {
      const len = Math.min(chunk, n - start);
      this.readBytes(e, staging.subarray(0, len * width), start * width);
      const dst = out.subarray(start, start + len);
      if (!half) dst.set(e.dtype === 'F64' ? new Float64Array(staging.buffer, 0, len) : new Float32Array(staging.buffer, 0, len));
      else {
        const f32 = widened ? widened.subarray(0, len) : (dst as Float32Array);
        (e.dtype === 'BF16' ? bf16ToF32 : f16ToF32)(new Uint16Array(staging.buffer, 0, len), f32);
        if (widened) dst.set(f32);
      }
    }
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

let f16Table: Uint32Array | null = null;

/**
 * The float32 bits of every IEEE half code (65536 entries, 256 KB, built once from the bit fields: normal
 * exponents rebiased 15 → 127, subnormals normalised, infinities and NaN payloads kept), so widening is one
 * table read per value.
 */
function f16Bits(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16,
      exp = (h >> 10) & 0x1f;
    let frac = h & 0x3ff;
    if (exp === 31) t[h] = sign | 0x7f800000 | (frac << 13);
    else if (exp !== 0) t[h] = sign | ((exp + 112) << 23) | (frac << 13);
    else if (frac === 0) t[h] = sign;
    else {
      let e = 113; // frac · 2^-24 = 1.f · 2^(e − 127) after shifting the leading 1 into bit 10
      while (!(frac & 0x400)) {
        frac <<= 1;
        e--;
      }
      t[h] = sign | (e << 23) | ((frac & 0x3ff) << 13);
    }
  }
  f16Table = t;
  return t;
}

/** IEEE half → f32, exactly (subnormals, infinities and NaN included), through the 65536-entry table. */
export function f16ToF32(src: Uint16Array, dst: Float32Array): void {
  const t = f16Bits(),
    out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
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

/** A tensor's name, dtype and shape: what a header needs before any data is written. */
export type TensorSpec = Pick<TensorToWrite, 'dtype' | 'shape'>;

/** Bytes a tensor takes in the file. */
export const plannedBytes = (t: TensorSpec): number => t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];

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
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + plannedBytes(t)] };
    starts.set(name, offset);
    offset += plannedBytes(t);
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
  writeSafetensorsStreamed(path, tensors, Object.entries(tensors), metadata);
}

/**
 * Writes a safetensors file whose header is planned (`plan`: name → dtype and shape, in file order) and whose
 * data arrives one tensor at a time from `tensors`, each written and let go before the next is asked for,
 * so memory holds one tensor, not the file. Each tensor must match its planned name, dtype and shape.
 */
export function writeSafetensorsStreamed(
  path: string,
  plan: Record<string, TensorSpec>,
  tensors: Iterable<[string, TensorToWrite]>,
  metadata: Record<string, string> = {},
): void {
  const { head } = safetensorsHeader(plan, metadata);
  const names = Object.keys(plan);
  writeStreamAtomic(path, (put) => {
    put(head);
    let k = 0;
    for (const [name, t] of tensors) {
      const want = plan[names[k]];
      if (
        name !== names[k] ||
        t.dtype !== want.dtype ||
        t.shape.length !== want.shape.length ||
        t.shape.some((d, i) => d !== want.shape[i])
      )
        throw new Error(
          `writeSafetensors: ${path}: tensor ${k} is '${name}' ${t.dtype} [${t.shape.join(', ')}], the header planned '${names[k]}' ${want?.dtype} [${want?.shape.join(', ')}]`,
        );
      put(tensorBytes(name, t));
      k++;
    }
    if (k !== names.length) throw new Error(`writeSafetensors: ${path}: ${k} tensors written, the header planned ${names.length}`);
  });
}
