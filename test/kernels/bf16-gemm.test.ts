/**
 * gemmBf16 compute "bf16" (native/bf16-gemm.h: A rounded to bfloat16, float32 accumulation of bf16 products; an
 * approximation) against its twin (src/kernels/bf16-gemm-twin.ts) on every path this machine can run:
 *   amx, avx512bf16  bit for bit (the twin sums k in the instruction's order)
 *   generic          the same products in sgemm's order: |Δ| ≤ 2·(k+1)·2^-24·Σ|bf16(a)·b| (two float32 sums of
 *                    the same k exact products, each within (k+1)·2^-24·Σ|·| of the exact sum)
 * on both layouts (x·Wᵀ, dY·W), k / m / n tails, k longer than one chunk (sums carried between chunks), strides, offsets, alpha/beta, 1 and 2 threads; products with
 * m ≤ 16 stay exact; the error budget against the exact mode.
 *
 * Run: node --import tsx --test test/kernels/bf16-gemm.test.ts   (build the addon first: npm run build:native)
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Bf16GemmPath } from '../../src/kernels/api.ts';
import { bf16Value, roundedToBf16 } from '../../src/kernels/bf16-bits.ts';
import { gemmBf16Rounded } from '../../src/kernels/bf16-gemm-twin.ts';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { cpuFlags } from '../../src/kernels/index.ts';
import { f32ToBf16 } from '../../src/io/safetensors.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';
import { relL2 } from '../helpers/assert-close.ts';

const k = nativeKernels();
const best = k.bf16GemmPath();
after(() => {
  k.bf16GemmPath(best);
  restoreNativeDefaults();
});

function randBf16(rng: () => number, n: number, scale = 1): Uint16Array {
  const bits = new Uint16Array(n);
  f32ToBf16(randF32(rng, n, scale), bits);
  return bits;
}

/** The paths this CPU and kernel can run, best first. */
function usablePaths(): Bf16GemmPath[] {
  return (['amx', 'avx512bf16', 'generic'] as const).filter((p) => {
    try {
      k.bf16GemmPath(p);
      return true;
    } catch {
      return false;
    }
  });
}

interface Case {
  transB: boolean;
  m: number;
  n: number;
  kk: number;
  lda: number;
  ldb: number;
  ldc: number;
  aOff: number;
  cOff: number;
}

const CASES: Case[] = [
  { transB: true, m: 17, n: 33, kk: 64, lda: 64, ldb: 64, ldc: 33, aOff: 0, cOff: 0 },
  { transB: true, m: 70, n: 50, kk: 100, lda: 103, ldb: 101, ldc: 55, aOff: 3, cOff: 2 }, // tails of m, n and k
  { transB: true, m: 40, n: 96, kk: 7, lda: 7, ldb: 7, ldc: 96, aOff: 0, cOff: 0 }, // odd k below one tile
  { transB: false, m: 33, n: 45, kk: 77, lda: 80, ldb: 47, ldc: 45, aOff: 1, cOff: 0 }, // dY · W
  { transB: false, m: 300, n: 64, kk: 96, lda: 96, ldb: 64, ldc: 64, aOff: 0, cOff: 0 }, // more than one row chunk
  { transB: true, m: 40, n: 70, kk: 2100, lda: 2100, ldb: 2101, ldc: 70, aOff: 0, cOff: 0 }, // k in 3 chunks of ≤ 1024
  { transB: false, m: 35, n: 48, kk: 2085, lda: 2085, ldb: 50, ldc: 48, aOff: 2, cOff: 1 }, // dY · W, k in 3 chunks
];

/** Σ_p |bf16(a[i, p]) · op(B)[p, j]| for every (i, j): the scale of the generic path's order difference. */
function absSums(c: Case, a: Float32Array, b: Uint16Array): Float64Array {
  const ar = roundedToBf16(a, c.aOff, c.lda, c.m, c.kk);
  const out = new Float64Array(c.m * c.n);
  for (let i = 0; i < c.m; i++)
    for (let j = 0; j < c.n; j++) {
      let s = 0;
      for (let p = 0; p < c.kk; p++) s += Math.abs(ar[i * c.kk + p] * bf16Value(c.transB ? b[j * c.ldb + p] : b[p * c.ldb + j]));
      out[i * c.n + j] = s;
    }
  return out;
}

describe('gemmBf16 compute "bf16"', () => {
  test("the default path is the best the CPU flags allow (AMX also needs the kernel's XTILEDATA grant)", () => {
    const flags = cpuFlags();
    const want = flags.includes('amx_bf16') ? 'amx' : flags.includes('avx512_bf16') ? 'avx512bf16' : 'generic';
    assert.equal(best, want);
    assert.ok(usablePaths().includes('generic'));
  });

  for (const path of usablePaths()) {
    test(`${path}: matches the twin (layouts, tails, strides, alpha/beta, 1 and 2 threads)`, () => {
      const rng = seededUniform(0xbf16 + path.length);
      k.bf16GemmPath(path);
      for (const c of CASES) {
        const a = randF32(rng, c.aOff + c.m * c.lda, 3),
          b = randBf16(rng, (c.transB ? c.n : c.kk) * c.ldb),
          c0 = randF32(rng, c.cOff + c.m * c.ldc);
        const scale = path === 'generic' ? absSums(c, a, b) : null;
        for (const [alpha, beta] of [
          [1, 0],
          [0.5, 2],
        ]) {
          const want = c0.slice();
          gemmBf16Rounded(
            c.transB,
            c.m,
            c.n,
            c.kk,
            alpha,
            a,
            c.aOff,
            c.lda,
            b,
            0,
            c.ldb,
            beta,
            want,
            c.cOff,
            c.ldc,
            path === 'generic' ? 'amx' : path,
          );
          for (const threads of [1, 2]) {
            k.setThreads(threads);
            const got = c0.slice();
            k.gemmBf16(c.transB, c.m, c.n, c.kk, alpha, a, c.aOff, c.lda, b, 0, c.ldb, beta, got, c.cOff, c.ldc, 'bf16');
            const what = `${path} ${c.transB ? 'x·Wᵀ' : 'dY·W'} ${c.m}×${c.n}×${c.kk} α ${alpha} β ${beta} ${threads}T`;
            for (let i = 0; i < c.m; i++)
              for (let j = 0; j < c.n; j++) {
                const at = c.cOff + i * c.ldc + j;
                if (!scale) {
                  if (got[at] !== want[at]) assert.fail(`${what}: C[${i}, ${j}] = ${got[at]}, twin ${want[at]}`);
                  continue;
                }
                const tol = 2 * (c.kk + 1) * 2 ** -24 * scale[i * c.n + j] * Math.abs(alpha) + 1e-6 * Math.abs(beta * c0[at]);
                if (!(Math.abs(got[at] - want[at]) <= tol))
                  assert.fail(`${what}: C[${i}, ${j}] = ${got[at]}, twin ${want[at]} (tolerance ${tol})`);
              }
            // outside C's (m, n) block nothing is written
            for (let i = 0; i < c.cOff; i++) assert.equal(got[i], c0[i]);
          }
        }
      }
      k.setThreads(1);
    });
  }

  test('the rounding matters: the exact mode differs from the twin by far more than the order tolerance', () => {
    const rng = seededUniform(0xbf19);
    const c: Case = { transB: true, m: 20, n: 30, kk: 64, lda: 64, ldb: 64, ldc: 30, aOff: 0, cOff: 0 };
    const a = randF32(rng, c.m * c.kk),
      b = randBf16(rng, c.n * c.kk);
    const exact = new Float32Array(c.m * c.n),
      twin = new Float32Array(c.m * c.n);
    k.gemmBf16(true, c.m, c.n, c.kk, 1, a, 0, c.kk, b, 0, c.kk, 0, exact, 0, c.n);
    gemmBf16Rounded(true, c.m, c.n, c.kk, 1, a, 0, c.kk, b, 0, c.kk, 0, twin, 0, c.n);
    const scale = absSums(c, a, b);
    const far = [...exact].filter((v, i) => Math.abs(v - twin[i]) > 2 * (c.kk + 1) * 2 ** -24 * scale[i]).length;
    assert.ok(far > exact.length / 2, `${far} of ${exact.length} outputs differ beyond the tolerance`);
  });

  test('error budget against exact: relative ‖Δy‖/‖y‖ ≤ 1% (bf16 keeps 8 bits of x)', () => {
    const rng = seededUniform(0xbf1a);
    const m = 64,
      n = 256,
      kk = 576,
      a = randF32(rng, m * kk),
      b = randBf16(rng, n * kk, 0.05);
    const exact = new Float32Array(m * n),
      approx = new Float32Array(m * n);
    k.gemmBf16(true, m, n, kk, 1, a, 0, kk, b, 0, kk, 0, exact, 0, n);
    k.gemmBf16(true, m, n, kk, 1, a, 0, kk, b, 0, kk, 0, approx, 0, n, 'bf16');
    const rel = relL2(approx, exact);
    assert.ok(rel > 0 && rel <= 0.01, `relative error ${rel}`);
  });

  test('m ≤ 16 is exact (native and reference); the reference runs the twin for m > 16', () => {
    const rng = seededUniform(0xbf1b);
    const n = 40,
      kk = 48,
      a = randF32(rng, 17 * kk),
      b = randBf16(rng, n * kk);
    for (const kern of [k, ref]) {
      const e = new Float32Array(16 * n),
        q = new Float32Array(16 * n);
      kern.gemmBf16(true, 16, n, kk, 1, a, 0, kk, b, 0, kk, 0, e, 0, n);
      kern.gemmBf16(true, 16, n, kk, 1, a, 0, kk, b, 0, kk, 0, q, 0, n, 'bf16');
      assert.deepEqual([...q], [...e], kern.name);
    }
    const r = new Float32Array(17 * n),
      t = new Float32Array(17 * n);
    ref.gemmBf16(true, 17, n, kk, 1, a, 0, kk, b, 0, kk, 0, r, 0, n, 'bf16');
    gemmBf16Rounded(true, 17, n, kk, 1, a, 0, kk, b, 0, kk, 0, t, 0, n);
    assert.deepEqual([...r], [...t]);
  });

  test('bf16GemmPath names what it cannot run', () => {
    assert.throws(() => k.bf16GemmPath('fast' as Bf16GemmPath), /bf16GemmPath: path = 'fast' must be 'generic' or 'avx512bf16' or 'amx'/);
    k.bf16GemmPath(best);
  });
});
