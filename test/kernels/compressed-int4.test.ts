/**
 * INT4 compressed-weight kernels: native (native/int4.cc) vs the TypeScript twins (src/kernels/compressed.ts),
 * the GPTQ packer, and argument validation (sparse: compressed-sparse.test.ts). Every native SIMD level this
 * CPU has (AVX-512, AVX2, scalar) is run, via compressedIsa(cap).
 *
 * Run: node --import tsx --test test/kernels/compressed-int4.test.ts   (build the addon first: npm run build:native)
 *
 * Tolerances (the twins compute in double from the exact float32 weights; native accumulates in float32):
 *  - int4Linear: |native − reference| ≤ 1e-6 · S + 1e-7, S = Σ_j |x_j| · |s_gj| · (16 + |z_gj|), the size of
 *    the per-group sums the matrix-vector path forms (16·Σ x f and (16 + z)·Σ x, f = 1 + q/16) before they
 *    cancel down to Σ x (q − z); float32 eps is 6e-8, observed errors ≤ 1.5e-7 · S (≤ 7e-7 · Σ_j |x_j · W_oj|).
 *  - M > 8 (exactly dequantised weights through sgemm) vs gemm: |Δ| ≤ 1e-6 · Σ_j |x_j · W_oj| + 1e-7.
 *  - int4Dequantize, pack/unpack: bit-exact.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { SimdLevel } from '../../src/kernels/api.ts';
import {
  compressedKernels,
  compressedReference as ref,
  gatherColumns,
  groupIndex,
  int4GroupOrder,
  packInt4,
  packSparse,
  quantizeInt4Rtn,
  unpackInt4,
} from '../../src/kernels/compressed.ts';
import { referenceKernels } from '../../src/kernels/reference.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';
import { assertWithin, int4Tolerance } from '../helpers/int4.ts';
import { assertBitEqual, denseTolerance, errorOf, levels, randomInt4 } from './helpers.ts';

after(restoreNativeDefaults);

// ---------------------------------------------------------------------------------------------
// INT4 packing

describe('INT4 packing (GPTQ layout)', () => {
  test('layout: input row 8p+k of output o in bits 4k..4k+3 of qweight[p, o]', () => {
    const outF = 3,
      inF = 16;
    const q = new Uint8Array(outF * inF);
    for (let j = 0; j < 8; j++) q[0 * inF + j] = j + 1; // output 0, rows 0..7 → 1..8
    q[2 * inF + 8] = 15; // output 2, row 8 → low nibble of qweight[1, 2]
    q[1 * inF + 15] = 15; // output 1, row 15 → top nibble (sign bit) of qweight[1, 1]
    const qw = packInt4(q, outF, inF);
    assert.equal(qw.length, 2 * outF);
    assert.equal(qw[0] >>> 0, 0x87654321);
    assert.equal(qw[1 * outF + 2], 0xf);
    assert.equal(qw[1 * outF + 1] >>> 0, 0xf0000000);
    assert.ok(qw[1 * outF + 1] < 0, 'nibble 7 = 15 sets the int32 sign bit');
  });

  test('pack/unpack round trip is bit-exact both ways', () => {
    const rng = seededUniform(0x1a4);
    const outF = 37,
      inF = 72;
    const q = new Uint8Array(outF * inF).map(() => Math.floor(rng() * 16));
    assert.deepEqual(unpackInt4(packInt4(q, outF, inF), inF, outF), q);
    // every 32-bit pattern, negative words included
    const qw = new Int32Array((inF / 8) * outF).map(() => (rng() * 4294967296) | 0);
    assert.deepEqual(packInt4(unpackInt4(qw, inF, outF), outF, inF), qw);
  });

  test('packInt4 rejects values above 15 and inF not a multiple of 8', () => {
    assert.throws(() => packInt4(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 16), 1, 8), /q\[0, 7\] = 16 does not fit in 4 bits/);
    assert.throws(() => packInt4(new Uint8Array(12), 1, 12), /inF = 12 must be a multiple of 8/);
    assert.throws(() => unpackInt4(new Int32Array(4), 12, 1), /inF = 12 must be a multiple of 8/);
  });

  test('RTN quantisation: |w − Ŵ| ≤ scale/2, integer zero points, zeros stay exactly zero', () => {
    const rng = seededUniform(0x2e40);
    const outF = 19,
      inF = 96,
      gs = 32;
    const w = randF32(rng, outF * inF);
    for (let i = 0; i < w.length; i++) if (rng() < 0.3) w[i] = 0;
    for (let j = 32; j < 64; j++) w[5 * inF + j] = 0; // an all-zero group
    const qw = quantizeInt4Rtn(w, outF, inF, gs);
    for (const z of qw.zeros) assert.ok(Number.isInteger(z) && z >= 0 && z <= 15, `zero point ${z}`);
    for (const kern of [nativeKernels(), ref]) {
      const d = new Float32Array(outF * inF);
      kern.int4Dequantize(qw.qweight, qw.scales, qw.zeros, qw.gIdx, inF, outF, d);
      for (let o = 0; o < outF; o++) {
        for (let j = 0; j < inF; j++) {
          const i = o * inF + j,
            s = qw.scales[Math.floor(j / gs) * outF + o];
          if (w[i] === 0) assert.ok(Object.is(d[i], 0), `w[${o}, ${j}] = 0 dequantised to ${d[i]}`);
          assert.ok(Math.abs(d[i] - w[i]) <= s / 2 + 1e-7, `|w − Ŵ| at [${o}, ${j}] = ${Math.abs(d[i] - w[i])} > ${s / 2}`);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// INT4 kernels, native vs reference

interface Int4Case {
  name: string;
  inF: number;
  outF: number;
  gs: number;
  actOrder?: boolean;
  fractionalZeros?: boolean;
  ms: number[];
}

const INT4_CASES: Int4Case[] = [
  { name: 'outF 37 (not a multiple of 8 or 16), groups of 16', inF: 64, outF: 37, gs: 16, ms: [1, 2, 3, 4, 5, 6, 7, 8, 9, 37] },
  { name: 'groups of 64, outF 100', inF: 256, outF: 100, gs: 64, ms: [1, 2, 5, 37] },
  { name: 'act-order gIdx (shuffled groups)', inF: 256, outF: 45, gs: 32, actOrder: true, ms: [1, 2, 3, 4, 5, 8, 9, 37] },
  { name: 'inF not a multiple of the group size (last group short)', inF: 136, outF: 50, gs: 32, ms: [1, 4, 5, 9] },
  { name: 'group size not a multiple of 8 (general path)', inF: 48, outF: 24, gs: 12, ms: [1, 2, 5, 12] },
  { name: 'one group (group size = inF), odd number of packed rows', inF: 40, outF: 17, gs: 40, ms: [1, 3, 37] },
  { name: 'fractional zero points, negative scales', inF: 128, outF: 33, gs: 32, fractionalZeros: true, ms: [1, 5, 9] },
  { name: '135M q/o shape 576×576, group 128', inF: 576, outF: 576, gs: 128, ms: [1, 2, 5, 9] },
  { name: 'act-order 135M down shape 576×1536', inF: 1536, outF: 64, gs: 128, actOrder: true, ms: [1, 4] },
  // ≥ 256 KB of codes: summed in row ranges of whole groups (int4-gemv.cc rowRanges), the last group short
  { name: '135M gate shape 1536×576 (5 row ranges, last group half)', inF: 576, outF: 1536, gs: 128, ms: [1, 3, 8] },
  { name: '135M down shape 576×1536 (6 row ranges)', inF: 1536, outF: 576, gs: 128, ms: [1, 2, 8] },
];

for (const level of ['avx512', 'avx2', 'scalar'] as SimdLevel[]) {
  describe(`native (${level}) vs reference: int4Linear`, () => {
    for (const cs of INT4_CASES) {
      test(cs.name, (t) => {
        if (!levels().includes(level)) {
          t.skip(`this CPU has no ${level}`);
          return;
        }
        nativeKernels().compressedIsa(level);
        const rng = seededUniform(0x4a1 + cs.inF * 7 + cs.outF);
        const w = randomInt4(rng, cs.outF, cs.inF, cs.gs, cs);
        for (const M of cs.ms) {
          const x = randF32(rng, M * cs.inF);
          const pad = 3;
          const yn = new Float32Array(M * cs.outF + pad).fill(7),
            yr = new Float32Array(M * cs.outF + pad).fill(7);
          nativeKernels().int4Linear(x, M, cs.inF, cs.outF, w.qweight, w.scales, w.zeros, w.gIdx, w.groupSize, yn);
          ref.int4Linear(x, M, cs.inF, cs.outF, w.qweight, w.scales, w.zeros, w.gIdx, w.groupSize, yr);
          assertWithin(`M = ${M}`, yn.subarray(0, M * cs.outF), yr.subarray(0, M * cs.outF), int4Tolerance(w, x, M));
          assert.deepEqual([...yn.subarray(M * cs.outF)], [7, 7, 7], 'wrote past y');
        }
      });
    }

    test('int4Dequantize is bit-exact (act-order, fractional zeros, negative scales)', (t) => {
      if (!levels().includes(level)) {
        t.skip(`this CPU has no ${level}`);
        return;
      }
      nativeKernels().compressedIsa(level);
      const rng = seededUniform(0xde9);
      for (const [outF, inF, gs] of [
        [37, 64, 16],
        [5, 136, 32],
        [130, 256, 128],
      ]) {
        const w = randomInt4(rng, outF, inF, gs, { actOrder: true, fractionalZeros: true });
        const dn = new Float32Array(outF * inF),
          dr = new Float32Array(outF * inF);
        nativeKernels().int4Dequantize(w.qweight, w.scales, w.zeros, w.gIdx, inF, outF, dn);
        ref.int4Dequantize(w.qweight, w.scales, w.zeros, w.gIdx, inF, outF, dr);
        assertBitEqual(`${outF}×${inF}`, dn, dr);
      }
    });
  });
}

describe('int4Linear: edge cases and helpers', () => {
  test('M > 8 runs on exactly dequantised weights (equals gemm on int4Dequantize within sgemm error)', () => {
    nativeKernels().compressedIsa('avx512');
    const rng = seededUniform(0x6e);
    const outF = 70,
      inF = 96,
      M = 9;
    const w = randomInt4(rng, outF, inF, 32, { actOrder: true });
    const x = randF32(rng, M * inF);
    const d = new Float32Array(outF * inF);
    nativeKernels().int4Dequantize(w.qweight, w.scales, w.zeros, w.gIdx, inF, outF, d);
    const yq = new Float32Array(M * outF),
      yd = new Float32Array(M * outF);
    nativeKernels().int4Linear(x, M, inF, outF, w.qweight, w.scales, w.zeros, w.gIdx, w.groupSize, yq);
    nativeKernels().gemm(false, true, M, outF, inF, 1, x, 0, inF, d, 0, inF, 0, yd, 0, outF);
    assertWithin('int4Linear vs gemm(dequantised)', yq, yd, denseTolerance(d, outF, inF, x, M));
  });

  test('empty shapes: M = 0 and outF = 0 touch nothing, inF = 0 gives y = 0', () => {
    const y = Float32Array.of(5, 5, 5);
    nativeKernels().int4Linear(
      new Float32Array(0),
      0,
      8,
      3,
      new Int32Array(3),
      new Float32Array(3),
      new Float32Array(3),
      new Int32Array(8),
      8,
      y,
    );
    nativeKernels().int4Linear(
      new Float32Array(8),
      1,
      8,
      0,
      new Int32Array(0),
      new Float32Array(0),
      new Float32Array(0),
      new Int32Array(8),
      8,
      y,
    );
    assert.deepEqual([...y], [5, 5, 5]);
    for (const M of [1, 9]) {
      const y0 = new Float32Array(M * 3).fill(NaN);
      nativeKernels().int4Linear(
        new Float32Array(0),
        M,
        0,
        3,
        new Int32Array(0),
        new Float32Array(0),
        new Float32Array(0),
        new Int32Array(0),
        128,
        y0,
      );
      assert.ok(
        y0.every((v) => Object.is(v, 0)),
        `M = ${M}: y = ${[...y0]}`,
      );
    }
  });

  test('two threads (compressedThreads(2)) give bit-identical results', () => {
    nativeKernels().compressedIsa('avx512');
    const rng = seededUniform(0x7707);
    const outF = 1040,
      inF = 1024; // 512 KB of packed weights: above the split threshold
    const w = randomInt4(rng, outF, inF, 128);
    const wa = randomInt4(rng, outF, inF, 128, { actOrder: true });
    const sp = packSparse(
      randF32(rng, outF * inF).map((v) => (Math.abs(v) < 0.5 ? 0 : v)),
      outF,
      inF,
    );
    for (const M of [1, 3, 8]) {
      const x = randF32(rng, M * inF);
      const run = (threads: number) => {
        assert.equal(nativeKernels().compressedThreads(threads), threads);
        const y1 = new Float32Array(M * outF),
          y2 = new Float32Array(M * outF),
          y3 = new Float32Array(M * outF);
        nativeKernels().int4Linear(x, M, inF, outF, w.qweight, w.scales, w.zeros, w.gIdx, 128, y1);
        nativeKernels().int4Linear(x, M, inF, outF, wa.qweight, wa.scales, wa.zeros, wa.gIdx, 128, y2);
        nativeKernels().sparseLinear(x, M, inF, outF, sp.rowPtr, sp.mask, sp.values, y3);
        return [y1, y2, y3];
      };
      const one = run(1),
        two = run(2);
      for (let i = 0; i < 3; i++) assertBitEqual(`M = ${M}, kernel ${i}`, two[i], one[i]);
      // and the second thread keeps working across many calls
      for (let r = 0; r < 200; r++) run(2);
    }
    nativeKernels().compressedThreads(1);
  });

  test('int4GroupOrder: reordered weight and gathered x give the same product; gIdx becomes ⌊j/gs⌋', () => {
    const rng = seededUniform(0x9e);
    const outF = 29,
      inF = 128,
      gs = 32;
    const w = randomInt4(rng, outF, inF, gs, { actOrder: true });
    const { weight, perm } = int4GroupOrder(w);
    assert.deepEqual(weight.gIdx, groupIndex(inF, gs));
    const d0 = new Float32Array(outF * inF),
      d1 = new Float32Array(outF * inF);
    ref.int4Dequantize(w.qweight, w.scales, w.zeros, w.gIdx, inF, outF, d0);
    ref.int4Dequantize(weight.qweight, weight.scales, weight.zeros, weight.gIdx, inF, outF, d1);
    for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j++) assert.ok(Object.is(d1[o * inF + j], d0[o * inF + perm[j]]));
    const M = 2,
      x = randF32(rng, M * inF),
      xp = new Float32Array(M * inF);
    gatherColumns(x, M, inF, perm, xp);
    const y0 = new Float32Array(M * outF),
      y1 = new Float32Array(M * outF);
    nativeKernels().int4Linear(x, M, inF, outF, w.qweight, w.scales, w.zeros, w.gIdx, gs, y0);
    nativeKernels().int4Linear(xp, M, inF, outF, weight.qweight, weight.scales, weight.zeros, weight.gIdx, gs, y1);
    assertWithin('reordered', y1, y0, int4Tolerance(w, x, M));
  });

  test('reference twins accept Float64Array x / y; compressedKernels picks native members', () => {
    const rng = seededUniform(0xf64);
    const w = randomInt4(rng, 5, 16, 8);
    const x = Float64Array.from(randF32(rng, 16)),
      y = new Float64Array(5);
    ref.int4Linear(x, 1, 16, 5, w.qweight, w.scales, w.zeros, w.gIdx, 8, y);
    const d = new Float64Array(5 * 16);
    ref.int4Dequantize(w.qweight, w.scales, w.zeros, w.gIdx, 16, 5, d);
    for (let o = 0; o < 5; o++) {
      let s = 0;
      for (let j = 0; j < 16; j++) s += x[j] * d[o * 16 + j];
      assert.equal(y[o], s);
    }
    assert.throws(
      () => nativeKernels().int4Linear(x, 1, 16, 5, w.qweight, w.scales, w.zeros, w.gIdx, 8, y),
      /float64 runs on the reference kernels/,
    );
    assert.equal(compressedKernels(nativeKernels()).int4Linear, nativeKernels().int4Linear);
    assert.equal(compressedKernels(referenceKernels).sparseLinear, ref.sparseLinear);
  });
});

describe('int4 argument validation (native and reference raise the same errors)', () => {
  const f = (n: number) => new Float32Array(n),
    i32 = (...v: number[]) => Int32Array.from(v);
  const g8 = () => new Int32Array(8);
  const cases: [string, (k: typeof ref) => void, RegExp][] = [
    [
      'inF not a multiple of 8',
      (k) => k.int4Linear(f(12), 1, 12, 2, new Int32Array(4), f(2), f(2), new Int32Array(12), 12, f(2)),
      /int4Linear: inF = 12 must be a multiple of 8/,
    ],
    [
      'qweight too short',
      (k) => k.int4Linear(f(16), 1, 16, 3, new Int32Array(5), f(3), f(3), new Int32Array(16), 16, f(3)),
      /int4Linear: 'qweight' has 5 elements but 6 are needed/,
    ],
    [
      'gIdx too short',
      (k) => k.int4Linear(f(16), 1, 16, 3, new Int32Array(6), f(3), f(3), new Int32Array(15), 16, f(3)),
      /'gIdx' has 15 elements but 16/,
    ],
    [
      'negative group',
      (k) => k.int4Linear(f(8), 1, 8, 2, new Int32Array(2), f(2), f(2), i32(0, 0, 0, -1, 0, 0, 0, 0), 8, f(2)),
      /gIdx\[3\] = -1 is negative/,
    ],
    [
      'group beyond scales',
      (k) => k.int4Linear(f(8), 1, 8, 2, new Int32Array(2), f(2), f(4), i32(0, 0, 0, 0, 0, 0, 0, 1), 8, f(2)),
      /'scales' has 2 elements but 4 are needed \(\(max gIdx \+ 1\) · outF = 2 · 2\)/,
    ],
    ['zeros too short', (k) => k.int4Linear(f(8), 1, 8, 2, new Int32Array(2), f(2), f(1), g8(), 8, f(2)), /'zeros' has 1 elements but 2/],
    ['x too short', (k) => k.int4Linear(f(15), 2, 8, 2, new Int32Array(2), f(2), f(2), g8(), 8, f(4)), /'x' has 15 elements but 16/],
    ['y too short', (k) => k.int4Linear(f(16), 2, 8, 2, new Int32Array(2), f(2), f(2), g8(), 8, f(3)), /'y' has 3 elements but 4/],
    ['groupSize 0', (k) => k.int4Linear(f(8), 1, 8, 2, new Int32Array(2), f(2), f(2), g8(), 0, f(2)), /groupSize = 0 must be ≥ 1/],
    [
      'dequantize out too short',
      (k) => k.int4Dequantize(new Int32Array(2), f(2), f(2), g8(), 8, 2, f(15)),
      /int4Dequantize: 'out' has 15 elements but 16/,
    ],
  ];
  for (const [name, call, pattern] of cases) {
    test(name, () => {
      const nativeMessage = errorOf(() => call(nativeKernels()));
      const refMessage = errorOf(() => call(ref));
      assert.match(nativeMessage, pattern);
      assert.equal(refMessage, nativeMessage);
    });
  }

  test('wrong array types are TypeErrors naming the argument', () => {
    assert.match(
      errorOf(
        () => nativeKernels().int4Linear(f(8), 1, 8, 2, new Uint32Array(2) as unknown as Int32Array, f(2), f(2), g8(), 8, f(2)),
        TypeError,
      ),
      /int4Linear: argument 4 'qweight' must be an Int32Array, got Uint32Array/,
    );
    assert.match(
      errorOf(
        () =>
          nativeKernels().int4Linear(f(8), 1, 8, 2, new Int32Array(2), f(2), f(2), new Float32Array(8) as unknown as Int32Array, 8, f(2)),
        TypeError,
      ),
      /argument 7 'gIdx' must be an Int32Array/,
    );
    assert.match(
      errorOf(() => nativeKernels().compressedIsa('sse' as SimdLevel)),
      /cap 'sse' must be one of avx512, avx2, scalar/,
    );
    assert.match(
      errorOf(() => nativeKernels().compressedThreads(0)),
      /compressedThreads: n = 0 must be in \[1, 1024\]/,
    );
  });
});
