/**
 * Compressed-weight kernels: native (native/int4.cc, native/sparse.cc) vs the TypeScript twins
 * (src/kernels/compressed.ts), the packers, and argument validation. Every native SIMD level this CPU
 * has (AVX-512, AVX2, scalar) is run, via compressedIsa(cap).
 *
 * Run: node --import tsx --test test/kernels/compressed.test.ts   (build the addon first: npm run build:native)
 *
 * Tolerances (the twins compute in double from the exact float32 weights; native accumulates in float32):
 *  - int4Linear: |native − reference| ≤ 1e-6 · S + 1e-7, S = Σ_j |x_j| · |s_gj| · (16 + |z_gj|), the size of
 *    the per-group sums the matrix-vector path forms (16·Σ x f and (16 + z)·Σ x, f = 1 + q/16) before they
 *    cancel down to Σ x (q − z); float32 eps is 6e-8, observed errors ≤ 1.5e-7 · S (≤ 7e-7 · Σ_j |x_j · W_oj|).
 *  - sparseLinear, and sparse × x vs dense gemm × x: |Δ| ≤ 1e-6 · Σ_j |x_j · W_oj| + 1e-7.
 *  - int4Dequantize, pack/unpack of both formats: bit-exact.
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
  sparseBytes,
  unpackInt4,
  unpackSparse,
  type Int4Weight,
} from '../../src/kernels/compressed.ts';
import { referenceKernels } from '../../src/kernels/reference.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';
import { assertWithin, int4Tolerance } from '../helpers/int4.ts';

/** SIMD levels this CPU runs, best first (the native default is the first). */
function levels(): SimdLevel[] {
  const all: SimdLevel[] = ['avx512', 'avx2', 'scalar'];
  const best = nativeKernels().compressedIsa('avx512');
  return all.slice(all.indexOf(best));
}

after(restoreNativeDefaults);

// ---------------------------------------------------------------------------------------------
// Helpers

function shuffle(rng: () => number, a: Int32Array): Int32Array {
  const b = a.slice();
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [b[i], b[j]] = [b[j], b[i]];
  }
  return b;
}

function assertBitEqual(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

/** The message of the error `fn` throws (fails if it does not throw `type`). */
function errorOf(fn: () => void, type: typeof RangeError | typeof TypeError = RangeError): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    return (err as Error).message;
  }
  assert.fail('expected an error');
}

/** A random INT4 weight: q uniform in 0..15, scales in ±[0.005, 0.1], zeros integer 0..15 (or fractional). */
function randomInt4(
  rng: () => number,
  outF: number,
  inF: number,
  groupSize: number,
  opts: { actOrder?: boolean; fractionalZeros?: boolean } = {},
): Int4Weight {
  const q = new Uint8Array(outF * inF);
  for (let i = 0; i < q.length; i++) q[i] = Math.floor(rng() * 16);
  const nGroups = Math.ceil(inF / groupSize);
  const scales = new Float32Array(nGroups * outF),
    zeros = new Float32Array(nGroups * outF);
  for (let i = 0; i < scales.length; i++) {
    scales[i] = (0.005 + 0.095 * rng()) * (rng() < 0.1 ? -1 : 1);
    zeros[i] = opts.fractionalZeros ? rng() * 15 : Math.floor(rng() * 16);
  }
  const g = groupIndex(inF, groupSize);
  return { inF, outF, groupSize, qweight: packInt4(q, outF, inF), scales, zeros, gIdx: opts.actOrder ? shuffle(rng, g) : g };
}

/** Per-output tolerance of a product with a dense (outF, inF) weight. */
function denseTolerance(w: Float32Array, outF: number, inF: number, x: Float32Array, M: number): Float64Array {
  const tol = new Float64Array(M * outF);
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let j = 0; j < inF; j++) s += Math.abs(x[m * inF + j] * w[o * inF + j]);
      tol[m * outF + o] = 1e-6 * s + 1e-7;
    }
  }
  return tol;
}

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
