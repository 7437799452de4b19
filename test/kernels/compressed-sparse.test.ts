/**
 * Sparse compressed-weight kernels: native (native/sparse.cc) vs the TypeScript twins
 * (src/kernels/compressed.ts), the bitmask packer, and argument validation (INT4: compressed-int4.test.ts).
 * Every native SIMD level this CPU has (AVX-512, AVX2, scalar) is run, via compressedIsa(cap).
 *
 * Run: node --import tsx --test test/kernels/compressed-sparse.test.ts   (build the addon first: npm run build:native)
 *
 * Tolerances (the twins compute in double from the exact float32 weights; native accumulates in float32):
 *  - sparseLinear, and sparse × x vs dense gemm × x: |Δ| ≤ 1e-6 · Σ_j |x_j · W_oj| + 1e-7.
 *  - pack/unpack: bit-exact.
 *  - bf16 values (packSparseBf16): bit-identical to float32 values holding the same (widened) numbers.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { SimdLevel } from '../../src/kernels/api.ts';
import { compressedReference as ref, packSparse, packSparseBf16, sparseBytes, unpackSparse } from '../../src/kernels/compressed.ts';
import { f32ToBf16 } from '../../src/io/safetensors.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';
import { assertWithin } from '../helpers/int4.ts';
import { assertBitEqual, denseTolerance, errorOf, levels } from './helpers.ts';

after(restoreNativeDefaults);

// ---------------------------------------------------------------------------------------------
// Sparse

/** Dense (outF, inF) with the given fraction of exact zeros (and optional zero rows). */
function sparseDense(rng: () => number, outF: number, inF: number, sparsity: number, zeroRows: number[] = []): Float32Array {
  const w = randF32(rng, outF * inF);
  for (let i = 0; i < w.length; i++) if (rng() < sparsity) w[i] = 0;
  for (const o of zeroRows) w.fill(0, o * inF, (o + 1) * inF);
  return w;
}

/** A sparse weight's bf16 bits (outF, inF) and their exact float32 upcast. */
function sparseBf16(rng: () => number, outF: number, inF: number, sparsity: number): { bits: Uint16Array; up: Float32Array } {
  const bits = new Uint16Array(outF * inF);
  f32ToBf16(sparseDense(rng, outF, inF, sparsity), bits);
  const up = new Float32Array(new Uint32Array(bits.length).map((_, i) => bits[i] << 16).buffer);
  return { bits, up };
}

describe('sparse packing (bitmask rows)', () => {
  test('bf16 packing keeps the values bf16: the mask and offsets of the upcast, ±0 dropped, NaN kept', () => {
    const rng = seededUniform(0x5e);
    for (const [outF, inF] of [
      [13, 45],
      [4, 33],
      [3, 1],
    ]) {
      const { bits, up } = sparseBf16(rng, outF, inF, 0.5);
      bits[0] = 0x8000; // −0
      up[0] = -0;
      if (bits.length > 1) {
        bits[1] = 0x7fc0; // NaN
        up[1] = NaN;
      }
      const sp = packSparseBf16(bits, outF, inF),
        f = packSparse(up, outF, inF);
      assert.ok(sp.values instanceof Uint16Array);
      assert.deepEqual([...sp.mask], [...f.mask]);
      assert.deepEqual([...sp.rowPtr], [...f.rowPtr]);
      assertBitEqual(`${outF}×${inF} unpacked`, unpackSparse(sp), unpackSparse(f));
    }
    const half = new Uint16Array(64 * 576).map((_, i) => (i % 2 ? 0x3f80 : 0));
    assert.equal(sparseBytes(packSparseBf16(half, 64, 576)), 4 * (64 * 18 + 65) + 2 * 64 * 288); // 1.125 B per weight + offsets
  });

  test('pack/unpack is exact for every sparsity and width; −0 comes back as +0; NaN/Inf kept', () => {
    const rng = seededUniform(0x5a);
    for (const [outF, inF] of [
      [13, 45],
      [7, 64],
      [3, 1],
      [9, 32],
      [4, 33],
      [2, 0],
      [0, 5],
    ]) {
      for (const sparsity of [0, 0.5, 0.9, 1]) {
        const w = sparseDense(rng, outF, inF, sparsity);
        if (w.length > 3) {
          w[0] = -0;
          w[1] = NaN;
          w[2] = -Infinity;
        }
        const sp = packSparse(w, outF, inF);
        assert.equal(sp.mask.length, outF * Math.ceil(inF / 32));
        assert.equal(sp.rowPtr.length, outF + 1);
        assert.equal(sp.values.length, w.filter((v) => v !== 0).length);
        const back = unpackSparse(sp);
        assertBitEqual(
          `${outF}×${inF} at ${sparsity}`,
          back,
          w.map((v) => (v === 0 ? 0 : v)),
        );
      }
    }
  });

  test('smaller than dense float32: 2.125 bytes per weight at 50%', () => {
    const rng = seededUniform(0x5b);
    const outF = 64,
      inF = 576;
    const w = randF32(rng, outF * inF);
    for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j += 2) w[o * inF + j + (o & 1)] = 0;
    const sp = packSparse(w, outF, inF);
    assert.equal(sparseBytes(sp), 4 * (outF * 18 + outF * 288 + outF + 1));
    assert.ok(sparseBytes(sp) / (4 * outF * inF) < 0.54);
  });
});

for (const level of ['avx512', 'avx2', 'scalar'] as SimdLevel[]) {
  describe(`native (${level}) vs reference: sparseLinear`, () => {
    const cases: [number, number, number][] = [
      [13, 45, 0.5],
      [129, 577, 0.6],
      [7, 64, 0.5],
      [5, 1, 0.5],
      [33, 100, 0.9],
      [20, 31, 0],
    ];
    for (const [outF, inF, sparsity] of cases) {
      test(`${outF}×${inF} at ${sparsity * 100}% (zero rows included)`, (t) => {
        if (!levels().includes(level)) {
          t.skip(`this CPU has no ${level}`);
          return;
        }
        nativeKernels().compressedIsa(level);
        const rng = seededUniform(0x5c + outF * 31 + inF);
        const zeroRows = outF > 3 ? [1, outF - 1] : [];
        const w = sparseDense(rng, outF, inF, sparsity, zeroRows);
        const sp = packSparse(w, outF, inF);
        for (const M of [1, 2, 3, 4, 5, 8, 9, 37]) {
          const x = randF32(rng, M * inF);
          const yn = new Float32Array(M * outF + 2).fill(7),
            yr = new Float32Array(M * outF).fill(7),
            yd = new Float32Array(M * outF);
          nativeKernels().sparseLinear(x, M, inF, outF, sp.rowPtr, sp.mask, sp.values, yn);
          ref.sparseLinear(x, M, inF, outF, sp.rowPtr, sp.mask, sp.values, yr);
          nativeKernels().gemm(false, true, M, outF, inF, 1, x, 0, Math.max(1, inF), w, 0, Math.max(1, inF), 0, yd, 0, outF);
          const tol = denseTolerance(w, outF, inF, x, M);
          const got = yn.subarray(0, M * outF);
          assertWithin(`M = ${M} vs reference`, got, yr, tol);
          assertWithin(`M = ${M} vs dense gemm`, got, yd, tol);
          for (const o of zeroRows)
            for (let m = 0; m < M; m++) assert.ok(Object.is(got[m * outF + o], 0), `zero row ${o} gave ${got[m * outF + o]}`);
          assert.deepEqual([...yn.subarray(M * outF)], [7, 7], 'wrote past y');
        }
      });
    }

    test('bf16 values give the float32-values result bit for bit (every M, both paths), and the twin agrees', (t) => {
      if (!levels().includes(level)) {
        t.skip(`this CPU has no ${level}`);
        return;
      }
      nativeKernels().compressedIsa(level);
      const rng = seededUniform(0x5f);
      for (const [outF, inF, sparsity] of [
        [13, 45, 0.5],
        [129, 577, 0.6],
        [40, 64, 0.5],
      ]) {
        const { bits, up } = sparseBf16(rng, outF, inF, sparsity);
        const sb = packSparseBf16(bits, outF, inF),
          sf = packSparse(up, outF, inF);
        for (const M of [1, 3, 8, 9]) {
          const x = randF32(rng, M * inF);
          const yb = new Float32Array(M * outF),
            yf = new Float32Array(M * outF),
            rb = new Float32Array(M * outF),
            rf = new Float32Array(M * outF);
          nativeKernels().sparseLinear(x, M, inF, outF, sb.rowPtr, sb.mask, sb.values, yb);
          nativeKernels().sparseLinear(x, M, inF, outF, sf.rowPtr, sf.mask, sf.values, yf);
          assertBitEqual(`${outF}×${inF} M = ${M}: bf16 vs float32 values`, yb, yf);
          ref.sparseLinear(x, M, inF, outF, sb.rowPtr, sb.mask, sb.values, rb);
          ref.sparseLinear(x, M, inF, outF, sf.rowPtr, sf.mask, sf.values, rf);
          assertBitEqual(`${outF}×${inF} M = ${M}: twin, bf16 vs float32 values`, rb, rf);
          assertWithin(`${outF}×${inF} M = ${M}: native vs twin`, yb, rb, denseTolerance(up, outF, inF, x, M));
        }
      }
    });

    test('x past inF is never read (NaN there changes nothing)', (t) => {
      if (!levels().includes(level)) {
        t.skip(`this CPU has no ${level}`);
        return;
      }
      nativeKernels().compressedIsa(level);
      const rng = seededUniform(0x5d);
      const outF = 6,
        inF = 37;
      const sp = packSparse(sparseDense(rng, outF, inF, 0.5), outF, inF);
      const x = new Float32Array(inF + 40).fill(NaN);
      x.set(randF32(rng, inF));
      const y = new Float32Array(outF);
      nativeKernels().sparseLinear(x.subarray(0, inF), 1, inF, outF, sp.rowPtr, sp.mask, sp.values, y);
      assert.ok(y.every(Number.isFinite), `y = ${[...y]}`);
    });
  });
}

describe('sparse argument validation (native and reference raise the same errors)', () => {
  const f = (n: number) => new Float32Array(n),
    i32 = (...v: number[]) => Int32Array.from(v),
    u32 = (...v: number[]) => Uint32Array.from(v);
  // W (2, 40) with row 0 = columns 0, 33 and row 1 = column 5
  const good = { rowPtr: i32(0, 2, 3), mask: u32(1, 2, 32, 0), values: Float32Array.of(1, 2, 3) };
  type Sp = typeof good;
  const call = (k: typeof ref, sp: Partial<Sp>, M = 1) => {
    const s = { ...good, ...sp };
    k.sparseLinear(f(M * 40), M, 40, 2, s.rowPtr, s.mask, s.values, f(M * 2));
  };
  test('the well-formed weight runs', () => {
    for (const M of [1, 9]) {
      call(nativeKernels(), {}, M);
      call(ref, {}, M);
    }
    assert.deepEqual(
      [...unpackSparse({ inF: 40, outF: 2, ...good })].flatMap((v, i) => (v ? [i, v] : [])),
      [0, 1, 33, 2, 45, 3],
    );
  });
  const cases: [string, Partial<Sp>, RegExp][] = [
    ['rowPtr too short', { rowPtr: i32(0, 2) }, /sparseLinear: 'rowPtr' has 2 elements but 3/],
    ['mask too short', { mask: u32(1, 2, 32) }, /'mask' has 3 elements but 4/],
    ['negative rowPtr[0]', { rowPtr: i32(-1, 2, 3) }, /rowPtr\[0\] = -1 is negative/],
    ['decreasing rowPtr', { rowPtr: i32(0, 3, 2) }, /rowPtr\[2\] = 2 < rowPtr\[1\] = 3 \(must be non-decreasing\)/],
    ['rowPtr past values', { rowPtr: i32(0, 2, 4) }, /rowPtr\[2\] = 4 exceeds the length of 'values' \(3\)/],
    [
      'a row with an extra mask bit',
      { mask: u32(1, 2, 33, 0) },
      /row 1: the mask bits set below inF = 40 do not match rowPtr\[2\] − rowPtr\[1\] = 1 values/,
    ],
    [
      'a row with a missing mask bit',
      { mask: u32(1, 0, 32, 0) },
      /row 0: the mask bits set below inF = 40 do not match rowPtr\[1\] − rowPtr\[0\] = 2/,
    ],
    [
      'a mask bit past inF (ignored, so the count is short)',
      { mask: u32(1, 2 | (1 << 9), 32, 0), values: Float32Array.of(1, 2, 9, 3), rowPtr: i32(0, 3, 4) },
      /row 0: the mask bits/,
    ],
  ];
  for (const [name, sp, pattern] of cases) {
    for (const M of [1, 9]) {
      test(`${name} (M = ${M})`, () => {
        const nativeMessage = errorOf(() => call(nativeKernels(), sp, M));
        assert.match(nativeMessage, pattern);
        assert.equal(
          errorOf(() => call(ref, sp, M)),
          nativeMessage,
        );
      });
    }
  }
  test('the last row cannot read past the values array, whatever the mask says', () => {
    for (const level of levels()) {
      nativeKernels().compressedIsa(level);
      // 2 rows × 64 columns, all bits set, but only 3 values
      const mask = new Uint32Array(4).fill(0xffffffff);
      assert.throws(
        () => nativeKernels().sparseLinear(f(64), 1, 64, 2, i32(0, 1, 3), mask, Float32Array.of(1, 2, 3), f(2)),
        /row 0: the mask bits/,
      );
      assert.throws(
        () =>
          nativeKernels().sparseLinear(f(64), 1, 64, 2, i32(0, 3, 3), u32(7, 0, 0xffffffff, 0xffffffff), Float32Array.of(1, 2, 3), f(2)),
        /row 1: the mask bits/,
      );
    }
    nativeKernels().compressedIsa('avx512');
  });
  test('values must be a Float32Array or a Uint16Array (bf16 bits)', () => {
    assert.match(
      errorOf(
        () => nativeKernels().sparseLinear(f(40), 1, 40, 2, good.rowPtr, good.mask, new Int32Array(3) as unknown as Float32Array, f(2)),
        TypeError,
      ),
      /sparseLinear: argument 6 'values' must be a Float32Array or a Uint16Array \(bfloat16 bits\)/,
    );
  });
  test('bf16 values: the last row cannot read past the values array either', () => {
    for (const level of levels()) {
      nativeKernels().compressedIsa(level);
      const mask = new Uint32Array(4).fill(0xffffffff);
      assert.throws(
        () => nativeKernels().sparseLinear(f(64), 1, 64, 2, i32(0, 1, 3), mask, Uint16Array.of(1, 2, 3), f(2)),
        /row 0: the mask bits/,
      );
      // 2 rows of 40 columns, all 80 values at the very end of the array: the short-array path, exact
      const bits = new Uint16Array(80).map((_, i) => 0x3f80 + i);
      const full = new Uint32Array([0xffffffff, 0xff, 0xffffffff, 0xff]);
      const x = randF32(seededUniform(0x60), 40);
      const yb = f(2),
        yf = f(2);
      nativeKernels().sparseLinear(x, 1, 40, 2, i32(0, 40, 80), full, bits, yb);
      nativeKernels().sparseLinear(
        x,
        1,
        40,
        2,
        i32(0, 40, 80),
        full,
        new Float32Array(new Uint32Array(80).map((_, i) => bits[i] << 16).buffer),
        yf,
      );
      assertBitEqual(`${level}: bf16 vs float32 values at the array end`, yb, yf);
    }
    nativeKernels().compressedIsa('avx512');
  });
  test('mask must be a Uint32Array', () => {
    assert.match(
      errorOf(
        () => nativeKernels().sparseLinear(f(40), 1, 40, 2, good.rowPtr, new Int32Array(4) as unknown as Uint32Array, good.values, f(2)),
        TypeError,
      ),
      /sparseLinear: argument 5 'mask' must be a Uint32Array/,
    );
  });
});
