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
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { SimdLevel } from '../../src/kernels/api.ts';
import { compressedReference as ref, packSparse, sparseBytes, unpackSparse } from '../../src/kernels/compressed.ts';
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

describe('sparse packing (bitmask rows)', () => {
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
