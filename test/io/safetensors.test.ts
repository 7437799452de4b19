/** safetensors: round trip, dtype conversion, and clear errors on bad files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors, writeSafetensorsStreamed, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/io/safetensors.ts';
import { bf16ToF32 } from '../../src/tensor/bf16.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-st-'));

test('round trip F32, BF16 (rounded), I32 and I64 with metadata; no temp file left', () => {
  const path = join(dir, 'a.safetensors');
  const f = Float32Array.from([1.5, -2.25, 3.0078125, 1e-3]);
  writeSafetensors(
    path,
    {
      w: { dtype: 'F32', shape: [2, 2], data: f },
      h: { dtype: 'BF16', shape: [4], data: f },
      ids: { dtype: 'I32', shape: [3], data: Int32Array.from([1, -2, 3]) },
      big: { dtype: 'I64', shape: [2], data: BigInt64Array.from([5n, -6n]) },
    },
    { note: 'hi' },
  );
  assert.deepEqual(readdirSync(dir), ['a.safetensors']);
  const st = new SafetensorsFile(path);
  assert.equal(st.metadata.note, 'hi');
  assert.deepEqual(Array.from(st.readFloat32('w').data), Array.from(f));
  assert.deepEqual(st.readFloat32('w').shape, [2, 2]);
  assert.deepEqual(Array.from(st.readFloat32('h').data), [1.5, -2.25, 3, 0.00099945068359375]); // as torch: tensor(1e-3).bfloat16().float()
  assert.deepEqual(Array.from(st.readInt32('ids').data), [1, -2, 3]);
  assert.deepEqual(Array.from(st.readInt32('big').data), [5, -6]);
  assert.throws(() => st.readFloat32('nope'), /no tensor named 'nope'/);
  assert.throws(() => st.readInt32('w'), /expected I32 or I64/);
  st.close();
});

test('BF16, F16 and F64 tensors larger than the 1 MiB staging buffer read exactly as float32 and float64, chunk by chunk; F16 written from float32 rounds', () => {
  const path = join(dir, 'big.safetensors');
  const n = 700_001; // > 1 MiB in every dtype, not a multiple of a chunk
  const f = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 100);
  const f64 = Float64Array.from(f, (v, i) => v + i * 1e-9);
  writeSafetensors(path, {
    b: { dtype: 'BF16', shape: [n], data: f },
    h: { dtype: 'F16', shape: [n], data: f },
    d: { dtype: 'F64', shape: [n], data: f64 },
  });
  const st = new SafetensorsFile(path);
  const bits = new Uint16Array(n),
    want = new Float32Array(n);
  f32ToBf16(f, bits);
  bf16ToF32(bits, want);
  assert.deepEqual(st.readFloat32('b').data, want);
  assert.deepEqual(st.readFloat64('b').data, Float64Array.from(want));
  f32ToF16(f, bits);
  f16ToF32(bits, want);
  assert.deepEqual(st.readFloat32('h').data, want);
  assert.deepEqual(st.readFloat64('h').data, Float64Array.from(want));
  assert.deepEqual(st.readFloat32('d').data, Float32Array.from(f64));
  assert.deepEqual(st.readFloat64('d').data, f64);
  st.close();
});

test('a streamed write whose tensors differ from the planned header fails and leaves no file', () => {
  const path = join(dir, 'planned.safetensors');
  const plan = { a: { dtype: 'F32', shape: [2] }, b: { dtype: 'F32', shape: [3] } } as const;
  const a = { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) } as const;
  assert.throws(
    () =>
      writeSafetensorsStreamed(path, plan, [
        ['a', a],
        ['b', { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }],
      ]),
    /tensor 1 is 'b' F32 \[2\], the header planned 'b' F32 \[3\]/,
  );
  assert.throws(() => writeSafetensorsStreamed(path, plan, [['a', a]]), /1 tensors written, the header planned 2/);
  assert.equal(existsSync(path), false);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('planned')),
    [],
  );
});

test('f32 → f16 rounds like torch .half() (nearest even, overflow, subnormals)', () => {
  const h = new Uint16Array(10);
  f32ToF16(Float32Array.from([0.1, 1 / 3, 65504, 65520, 1e-8, 6e-8, -2.5, 1e5, 5.96e-8, 0.00006103515625 * 0.5 + 1e-12]), h);
  // expected bit patterns printed by torch 1.13: tensor(values).half().view(torch.int16)
  assert.deepEqual(Array.from(h), [0x2e66, 0x3555, 0x7bff, 0x7c00, 0x0, 0x1, 0xc100, 0x7c00, 0x1, 0x200]);
});

test('bf16 and f16 conversions', () => {
  const out = new Float32Array(1);
  bf16ToF32(Uint16Array.from([0x3fc0]), out);
  assert.equal(out[0], 1.5);
  const h = new Uint16Array(1);
  f32ToBf16(Float32Array.from([1.00390625]), h); // exactly halfway between two bf16 values → even
  assert.equal(h[0], 0x3f80);
  const f16 = new Float32Array(4);
  f16ToF32(Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7c00]), f16);
  assert.deepEqual(Array.from(f16), [1, -2, 2 ** -24, Infinity]);
});

test('F16 → float32 through the table equals the IEEE value of every one of the 65536 codes', () => {
  const codes = Uint16Array.from({ length: 65536 }, (_, h) => h);
  const got = new Float32Array(codes.length);
  f16ToF32(codes, got);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1,
      exp = (h >> 10) & 0x1f,
      frac = h & 0x3ff;
    // IEEE 754 binary16, in float64 (every half value is exact there and in float32)
    const want =
      exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got[h]), `code 0x${h.toString(16)}: NaN, got ${got[h]}`);
    else assert.ok(Object.is(got[h], want), `code 0x${h.toString(16)}: ${want}, got ${got[h]}`); // Object.is: −0 stays −0
  }
});

function bad(name: string, bytes: Buffer | Uint8Array, pattern: RegExp): void {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  assert.throws(
    () => new SafetensorsFile(path),
    (e: Error) => pattern.test(e.message) && e.message.includes(path),
  );
}

function withHeader(header: object, dataBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

test('bad files give errors that name the file and the problem', () => {
  assert.throws(() => new SafetensorsFile(join(dir, 'missing.safetensors')), /cannot open \(ENOENT\)/);
  bad('short', Buffer.alloc(3), /too short/);
  bad('hugeheader', withHeader({}, 0).fill(0xff, 0, 8), /header length/);
  const notJson = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{abc')]);
  bad('notjson', notJson, /not valid JSON/);
  bad('dtype', withHeader({ a: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, 1), /unsupported dtype "Q4"/);
  bad('shape', withHeader({ a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 8] } }, 8), /needs 16 bytes but data_offsets span 8/);
  bad('truncated', withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /truncated/);
  bad(
    'overlap',
    withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12),
    /overlap/,
  );
  const good = join(dir, 'a.safetensors');
  const whole = readFileSync(good);
  bad('cut', whole.subarray(0, whole.length - 4), /truncated/);
  assert.ok(existsSync(good));
});
