/**
 * gemmBf16 compute mode "bf16-act" (native/bf16-dot.cc: x rounded to bfloat16, AVX512-BF16 vdpbf16ps where the
 * CPU has it; an approximation): against its twin (the reference rounds x the same way, then sums in double),
 * at every SIMD level (below AVX-512 the rounded x runs through the exact kernel), 1 and 2 threads, k tails,
 * strides, alpha/beta; its error budget against the exact mode; calls it does not apply to are exact.
 *
 * Run: node --import tsx --test test/kernels/bf16-act.test.ts   (build the addon first: npm run build:native)
 * Tolerance vs the twin: 1e-5·|ref| + 1e-6·√k (float32 accumulation vs double).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { SimdLevel } from '../../src/kernels/api.ts';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { f32ToBf16 } from '../../src/io/safetensors.ts';
import { assertClose, relL2 } from '../helpers/assert-close.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';

after(restoreNativeDefaults);

function randBf16(rng: () => number, n: number, scale = 1): Uint16Array {
  const bits = new Uint16Array(n);
  f32ToBf16(randF32(rng, n, scale), bits);
  return bits;
}

function levels(): SimdLevel[] {
  const all: SimdLevel[] = ['avx512', 'avx2', 'scalar'];
  return all.slice(all.indexOf(nativeKernels().compressedIsa('avx512')));
}

describe('gemmBf16 compute "bf16-act"', () => {
  const k = nativeKernels();

  test('native matches the twin at every SIMD level and thread count (k tails, strides, alpha/beta)', () => {
    const rng = seededUniform(0xbf16);
    const cases = [
      { m: 1, n: 1536, kk: 576, ld: 576 },
      { m: 3, n: 77, kk: 100, ld: 130 },
      { m: 16, n: 40, kk: 31, ld: 31 },
      { m: 2, n: 600, kk: 1536, ld: 1536 },
    ];
    for (const { m, n, kk, ld } of cases) {
      const a = randF32(rng, m * ld, 3),
        b = randBf16(rng, n * ld),
        c0 = randF32(rng, m * n);
      for (const [alpha, beta] of [
        [1, 0],
        [0.5, 2],
      ]) {
        const want = c0.slice();
        ref.gemmBf16(true, m, n, kk, alpha, a, 0, ld, b, 0, ld, beta, want, 0, n, 'bf16-act');
        for (const level of levels()) {
          for (const threads of [1, 2]) {
            k.compressedIsa(level);
            k.setThreads(threads);
            const got = c0.slice();
            k.gemmBf16(true, m, n, kk, alpha, a, 0, ld, b, 0, ld, beta, got, 0, n, 'bf16-act');
            assertClose(got, want, `${m}×${n}×${kk} α ${alpha} β ${beta} ${level} ${threads}T`, { rtol: 1e-5, atol: 1e-6 * Math.sqrt(kk) });
          }
        }
      }
    }
    k.compressedIsa('avx512');
    k.setThreads(1);
  });

  test('error budget against exact: relative ‖Δy‖/‖y‖ ≤ 1% (bf16 keeps 8 bits of x)', () => {
    const rng = seededUniform(0xbf17);
    const m = 4,
      n = 1536,
      kk = 576,
      a = randF32(rng, m * kk),
      b = randBf16(rng, n * kk, 0.05);
    const exact = new Float32Array(m * n),
      approx = new Float32Array(m * n);
    k.gemmBf16(true, m, n, kk, 1, a, 0, kk, b, 0, kk, 0, exact, 0, n);
    k.gemmBf16(true, m, n, kk, 1, a, 0, kk, b, 0, kk, 0, approx, 0, n, 'bf16-act');
    const rel = relL2(approx, exact);
    // bf16 rounding of x: relative error ≤ 2^−9 per element, ~0.1–0.2% on y for random data
    assert.ok(rel > 0 && rel <= 0.01, `relative error ${rel}`);
  });

  test('m > 16 and the dY · W layout are exact; bad mode names are RangeErrors', () => {
    const rng = seededUniform(0xbf18);
    const m = 17,
      n = 20,
      kk = 48,
      a = randF32(rng, m * kk),
      b = randBf16(rng, n * kk);
    const e = new Float32Array(m * n),
      q = new Float32Array(m * n);
    k.gemmBf16(true, m, n, kk, 1, a, 0, kk, b, 0, kk, 0, e, 0, n);
    k.gemmBf16(true, m, n, kk, 1, a, 0, kk, b, 0, kk, 0, q, 0, n, 'bf16-act');
    assert.deepEqual([...q], [...e]);
    const d = randF32(rng, 2 * n),
      e2 = new Float32Array(2 * kk),
      q2 = new Float32Array(2 * kk);
    k.gemmBf16(false, 2, kk, n, 1, d, 0, n, b, 0, kk, 0, e2, 0, kk);
    k.gemmBf16(false, 2, kk, n, 1, d, 0, n, b, 0, kk, 0, q2, 0, kk, 'bf16-act');
    assert.deepEqual([...q2], [...e2]);
    const bad = 'fast' as 'exact';
    assert.throws(
      () => k.gemmBf16(true, 1, n, kk, 1, a, 0, kk, b, 0, kk, 0, e, 0, n, bad),
      /gemmBf16: compute = 'fast' must be 'exact' or 'bf16-act'/,
    );
    assert.throws(
      () => ref.gemmBf16(true, 1, n, kk, 1, a, 0, kk, b, 0, kk, 0, e, 0, n, bad),
      /gemmBf16: compute = 'fast' must be 'exact' or 'bf16-act'/,
    );
  });
});
