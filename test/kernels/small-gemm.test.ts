/**
 * The native gemm's small-M path (native/small-gemm.cc: y = x · Wᵀ for 1 ≤ m ≤ 16 rows, W row-major (n, k)
 * with n·k ≥ 65536 — gemm.cc's kSmallGemmMinWeight; smaller weights stay on OpenBLAS) against the reference gemm, for every SIMD version the CPU has (AVX-512, AVX2,
 * scalar, via compressedIsa(cap)), at 1 and 2 threads: odd sizes (k tails of every length modulo 16,
 * n not a multiple of the register block), strided views (lda > k, ldb > k as in elastic-width slices,
 * ldc > n, offsets), alpha/beta, NaN in C with beta = 0. Also: a row's result does not depend on how many
 * other rows are in the batch (bitwise), since each output is one dot product in a fixed order.
 *
 * Run: node --import tsx --test test/kernels/small-gemm.test.ts   (build the addon first: npm run build:native)
 * Tolerance: |native − reference| ≤ 1e-5·|ref| + 1e-6·√k — float32 accumulation vs the double reference.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Kernels, SimdLevel } from '../../src/kernels/api.ts';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';

after(restoreNativeDefaults);

interface Case {
  m: number;
  n: number;
  k: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
  aOff?: number;
  bOff?: number;
  cOff?: number;
  alpha?: number;
  beta?: number;
  nanC?: boolean;
}

/** Runs gemm(false, true, …) on both backends from the same data; checks C inside and untouched outside. */
function check(what: string, kern: Kernels, cs: Case, seed: number): void {
  const { m, n, k } = cs;
  const lda = cs.lda ?? k,
    ldb = cs.ldb ?? k,
    ldc = cs.ldc ?? n;
  const aOff = cs.aOff ?? 0,
    bOff = cs.bOff ?? 0,
    cOff = cs.cOff ?? 0;
  const alpha = cs.alpha ?? 1,
    beta = cs.beta ?? 0;
  const rng = seededUniform(seed);
  const a = randF32(rng, aOff + (m - 1) * lda + k + 3);
  const b = randF32(rng, bOff + (n - 1) * ldb + k + 3);
  const c = randF32(rng, cOff + (m - 1) * ldc + n + 3);
  const inside = (i: number) => i >= cOff && i < cOff + m * ldc && (i - cOff) % ldc < n;
  if (cs.nanC)
    c.forEach((_, i) => {
      if (inside(i)) c[i] = NaN;
    });
  const cn = c.slice(),
    cr = c.slice();
  kern.gemm(false, true, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, cn, cOff, ldc);
  ref.gemm(false, true, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, cr, cOff, ldc);
  assertClose(cn, cr, what, { rtol: 1e-5, atol: 1e-6 * Math.sqrt(k) });
  for (let i = 0; i < c.length; i++) {
    if (!inside(i)) assert.ok(Object.is(cn[i], c[i]), `${what}: element ${i} outside C changed`);
    else assert.ok(!Number.isNaN(cn[i]), `${what}: C[${i}] is NaN`);
  }
}

/** gemm.cc routes x · Wᵀ to the small-M kernel only from this many weight elements (kSmallGemmMinWeight). */
const SMALL_MIN_WEIGHT = 1 << 16;

const CASES: Case[] = [
  // k tails 0..16 (and the 8-wide AVX2 tail), every m, n remainders of every register block
  ...Array.from({ length: 17 }, (_, t) => ({ m: 1 + (t % 16), n: 1400 + t, k: 48 + t })),
  { m: 16, n: 4099, k: 17 },
  { m: 8, n: 128, k: 577 }, // few outputs, long rows
  { m: 5, n: 13109, k: 5 }, // k shorter than one vector
  // strided views: a row/column slice of a larger weight (elastic width), padded x and y, offsets
  { m: 7, n: 1500, k: 300, lda: 311, ldb: 576, ldc: 1536, aOff: 5, bOff: 37, cOff: 3, alpha: -0.5, beta: 0.25 },
  { m: 3, n: 2003, k: 33, ldb: 40, beta: 1 },
  { m: 9, n: 1100, k: 70, ldc: 1103, cOff: 2, beta: 0, nanC: true },
  { m: 1, n: 1200, k: 64, lda: 70, ldb: 100, aOff: 1, bOff: 2, alpha: 3, beta: -1 },
  { m: 12, n: 1536, k: 576, alpha: 2 },
];
for (const c of CASES) assert.ok(c.n * c.k >= SMALL_MIN_WEIGHT, `case m ${c.m} n ${c.n} k ${c.k} would not reach the small-M kernel`);

const LEVELS: SimdLevel[] = ['avx512', 'avx2', 'scalar'];

describe('gemm small-M path vs reference', () => {
  for (const level of LEVELS) {
    for (const threads of [1, 2]) {
      test(`${level}, ${threads} thread(s)`, (t) => {
        const k = nativeKernels();
        if (k.compressedIsa(level) !== level) {
          t.skip(`the CPU has no ${level}`);
          return;
        }
        k.setThreads(threads);
        CASES.forEach((cs, i) => check(`${level}/${threads}t case ${i} (m ${cs.m}, n ${cs.n}, k ${cs.k})`, k, cs, 0x5a11 + i));
      });
    }
  }
});

test('a row gives the same bits whatever the other rows of the batch', () => {
  const k = nativeKernels();
  k.compressedIsa('avx512');
  k.setThreads(1);
  const n = 1536,
    kk = 576,
    m = 16;
  const rng = seededUniform(0xba7);
  const w = randF32(rng, n * kk, 0.05),
    x = randF32(rng, m * kk);
  const all = new Float32Array(m * n);
  k.gemm(false, true, m, n, kk, 1, x, 0, kk, w, 0, kk, 0, all, 0, n);
  for (const rows of [1, 2, 3, 5, 8]) {
    const part = new Float32Array(rows * n);
    k.gemm(false, true, rows, n, kk, 1, x, 0, kk, w, 0, kk, 0, part, 0, n);
    assert.deepEqual(part, all.subarray(0, rows * n), `the first ${rows} rows differ from the same rows in a batch of ${m}`);
  }
});
