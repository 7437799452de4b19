/**
 * gemmBf16 (native/bf16.cc: a bfloat16 weight given as Uint16Array bits) against its reference twin, for every
 * SIMD version the CPU has (compressedIsa cap) and 1/2 threads: both layouts (x · Wᵀ with W (n, k), and
 * dY · W with W (k, n)), the small-M path (m ≤ 16, weights of ≥ 64 K elements) and the widened-weight
 * sgemm / sgemv path, k tails, strided views (elastic-width slices of a wider weight), offsets,
 * alpha/beta, NaN in C with beta = 0, k = 0. Also: the result equals gemm on the upcast float32 weight bit for
 * bit (the same products of the same values, summed by the same call), and argument errors.
 *
 * Run: node --import tsx --test test/kernels/bf16.test.ts   (build the addon first: npm run build:native)
 * Tolerance: |native − reference| ≤ 1e-5·|ref| + 1e-6·√k (float32 accumulation vs the double reference).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { NativeKernels, SimdLevel } from '../../src/kernels/api.ts';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { f32ToBf16 } from '../../src/io/safetensors.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';

after(restoreNativeDefaults);

/** n random bfloat16 bit patterns (values in [−scale, scale)). */
function randBf16(rng: () => number, n: number, scale = 1): Uint16Array {
  const bits = new Uint16Array(n);
  f32ToBf16(randF32(rng, n, scale), bits);
  return bits;
}

function widen(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

interface Case {
  tB: boolean;
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

function run(what: string, k: NativeKernels, cs: Case, seed: number): void {
  const { tB, m, n } = cs,
    kk = cs.k;
  const lda = cs.lda ?? Math.max(1, kk),
    ldb = cs.ldb ?? Math.max(1, tB ? kk : n),
    ldc = cs.ldc ?? n;
  const aOff = cs.aOff ?? 0,
    bOff = cs.bOff ?? 0,
    cOff = cs.cOff ?? 0;
  const alpha = cs.alpha ?? 1,
    beta = cs.beta ?? 0;
  const rng = seededUniform(seed);
  const a = randF32(rng, aOff + Math.max(0, m - 1) * lda + kk + 2);
  const b = randBf16(rng, bOff + Math.max(0, (tB ? n : kk) - 1) * ldb + (tB ? kk : n) + 2);
  const c = randF32(rng, cOff + Math.max(0, m - 1) * ldc + n + 2);
  const inside = (i: number) => i >= cOff && i < cOff + m * ldc && (i - cOff) % ldc < n;
  if (cs.nanC)
    c.forEach((_, i) => {
      if (inside(i)) c[i] = NaN;
    });
  const cn = c.slice(),
    cr = c.slice(),
    cu = c.slice();
  k.gemmBf16(tB, m, n, kk, alpha, a, aOff, lda, b, bOff, ldb, beta, cn, cOff, ldc);
  ref.gemmBf16(tB, m, n, kk, alpha, a, aOff, lda, b, bOff, ldb, beta, cr, cOff, ldc);
  const tol = { rtol: 1e-5, atol: 1e-6 * Math.sqrt(Math.max(kk, 1)) };
  assertClose(cn, cr, `${what} vs reference`, tol);
  // the same product on the upcast float32 weight: the same call (native/bf16.cc), so the same bits
  k.gemm(false, tB, m, n, kk, alpha, a, aOff, lda, widen(b), bOff, ldb, beta, cu, cOff, ldc);
  const differs = cn.findIndex((v, i) => !Object.is(v, cu[i]));
  assert.equal(differs, -1, `${what}: C[${differs}] = ${cn[differs]}, gemm on the float32 weight gives ${cu[differs]}`);
  for (let i = 0; i < c.length; i++) {
    if (!inside(i)) assert.ok(Object.is(cn[i], c[i]), `${what}: element ${i} outside C changed`);
    else assert.ok(!Number.isNaN(cn[i]), `${what}: C[${i}] is NaN`);
  }
}

const CASES: Case[] = [
  // x · Wᵀ, small-M path (weights of ≥ 64 K elements, as gemm): every k tail, m = 1..16
  ...Array.from({ length: 17 }, (_, t) => ({ tB: true, m: 1 + (t % 16), n: Math.ceil(65536 / (1 + 5 * t)) + t, k: 1 + 5 * t })),
  // x · Wᵀ, m ≤ 16 on a smaller weight: sgemv (m = 1) or sgemm, as gemm
  ...Array.from({ length: 4 }, (_, t) => ({ tB: true, m: 1 + 5 * t, n: 37 + t, k: 1 + 7 * t })),
  { tB: true, m: 4, n: 3, k: 64, ldb: 100, bOff: 7, lda: 70, aOff: 3, ldc: 9, cOff: 1, alpha: 0.5, beta: -2 }, // elastic slice
  { tB: true, m: 16, n: 1500, k: 96, beta: 0, nanC: true },
  // x · Wᵀ, m > 16: the widened weight + sgemm (n·k above 2^18, where tiles used to change the sums)
  { tB: true, m: 17, n: 29, k: 33 },
  { tB: true, m: 40, n: 700, k: 600, lda: 610, ldb: 640, bOff: 5, ldc: 705, cOff: 2, alpha: -1, beta: 0.5 },
  // dY · W (backward to the input): W stored (k, n); one row (sgemv), several; n·k above 2^18
  { tB: false, m: 1, n: 19, k: 23 },
  { tB: false, m: 7, n: 576, k: 600, beta: 1 },
  { tB: false, m: 33, n: 300, k: 1000, ldb: 320, bOff: 11, beta: 0.25, alpha: 2 },
  { tB: false, m: 5, n: 6, k: 9, beta: 0, nanC: true },
  { tB: false, m: 40, n: 64, k: 4160 },
  { tB: true, m: 40, n: 64, k: 4160 },
  // k = 0 scales C by beta
  { tB: true, m: 3, n: 4, k: 0, beta: 2 },
  { tB: false, m: 20, n: 4, k: 0, beta: 0.5 },
];

describe('gemmBf16 native vs reference', () => {
  for (const level of ['avx512', 'avx2', 'scalar'] as SimdLevel[]) {
    for (const threads of [1, 2]) {
      test(`${level}, ${threads} thread(s)`, (t) => {
        const k = nativeKernels();
        if (k.compressedIsa(level) !== level) {
          t.skip(`the CPU has no ${level}`);
          return;
        }
        k.setThreads(threads);
        CASES.forEach((cs, i) =>
          run(`${level}/${threads}t case ${i} (${cs.tB ? 'x·Wᵀ' : 'dY·W'}, m ${cs.m}, n ${cs.n}, k ${cs.k})`, k, cs, 0xbf16 + i),
        );
      });
    }
  }
});

test('gemmBf16 argument errors name the kernel and the argument', () => {
  const k = nativeKernels();
  const a = new Float32Array(8),
    c = new Float32Array(8);
  assert.throws(
    () => k.gemmBf16(true, 2, 2, 2, 1, a, 0, 2, new Float32Array(4) as unknown as Uint16Array, 0, 2, 0, c, 0, 2),
    /gemmBf16: argument 8 'b' must be a Uint16Array/,
  );
  assert.throws(
    () => k.gemmBf16(true, 2, 2, 2, 1, a, 0, 2, new Uint16Array(3), 0, 2, 0, c, 0, 2),
    /gemmBf16: 'b' has 3 elements but 4 are needed/,
  );
  assert.throws(
    () => k.gemmBf16(true, 2, 2, 3, 1, a, 0, 2, new Uint16Array(8), 0, 3, 0, c, 0, 2),
    /gemmBf16: lda = 2 must be ≥ max\(1, 3\)/,
  );
  assert.throws(
    () => ref.gemmBf16(true, 2, 2, 2, 1, a, 0, 2, new Uint16Array(3), 0, 2, 0, c, 0, 2),
    /gemmBf16: 'b' has 3 elements but 4 are needed/,
  );
});
