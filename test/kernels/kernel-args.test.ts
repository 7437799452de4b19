/**
 * Argument validation of the native addon (TypeError / RangeError naming the kernel and the argument), the
 * same index errors from the reference kernels, and NativeInfo.
 *
 * Run: node --import tsx --test test/kernels/kernel-args.test.ts   (build the addon first: npm run build:native)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { nativeKernels } from '../helpers/native.ts';

describe('native argument validation', () => {
  const f = (n: number) => new Float32Array(n);
  const i32 = (...v: number[]) => Int32Array.from(v);

  test('bad arguments throw TypeError / RangeError naming the kernel and argument', () => {
    const k = nativeKernels();
    const cases: [string, () => unknown, ErrorConstructor, RegExp][] = [
      [
        'float64 operand',
        () => k.gemm(false, false, 2, 2, 2, 1, new Float64Array(4), 0, 2, f(4), 0, 2, 0, f(4), 0, 2),
        TypeError,
        /gemm: argument 6 'a' is a Float64Array.*float64 runs on the reference kernels/,
      ],
      [
        'number instead of array',
        () => k.gemm(false, false, 2, 2, 2, 1, 5 as unknown as Float32Array, 0, 2, f(4), 0, 2, 0, f(4), 0, 2),
        TypeError,
        /gemm: argument 6 'a' must be a Float32Array, got number/,
      ],
      [
        'offset out of range',
        () => k.gemm(false, false, 2, 2, 2, 1, f(4), 1, 2, f(4), 0, 2, 0, f(4), 0, 2),
        RangeError,
        /gemm: 'a' has 4 elements but 5 are needed/,
      ],
      [
        'C view past the end',
        () => k.gemm(false, false, 2, 2, 2, 1, f(4), 0, 2, f(4), 0, 2, 0, f(4), 0, 3),
        RangeError,
        /gemm: 'c' has 4 elements but 5 are needed/,
      ],
      [
        'ld smaller than width',
        () => k.gemm(false, false, 2, 3, 2, 1, f(4), 0, 2, f(6), 0, 2, 0, f(6), 0, 3),
        RangeError,
        /gemm: ldb = 2 must be ≥ max\(1, 3\)/,
      ],
      [
        'wrong argument count',
        () => (k.gemm as unknown as (...a: unknown[]) => void)(false, false, 2),
        TypeError,
        /gemm: expected 16 arguments, got 3/,
      ],
      [
        'negative size',
        () => k.gemm(false, false, -1, 2, 2, 1, f(4), 0, 2, f(4), 0, 2, 0, f(4), 0, 2),
        RangeError,
        /gemm: argument 2 'm' must be ≥ 0/,
      ],
      [
        'fractional size',
        () => k.gemm(false, false, 2, 2, 1.5, 1, f(4), 0, 2, f(4), 0, 2, 0, f(4), 0, 2),
        RangeError,
        /gemm: argument 4 'k' must be an integer/,
      ],
      [
        'non-boolean transpose flag',
        () => k.gemm(0 as unknown as boolean, false, 2, 2, 2, 1, f(4), 0, 2, f(4), 0, 2, 0, f(4), 0, 2),
        TypeError,
        /gemm: argument 0 'transA' must be a boolean/,
      ],
      [
        'batched stride past the end',
        () => k.gemmBatched(false, false, 2, 2, 2, 1, f(8), 0, 2, 4, f(8), 0, 2, 5, 0, f(8), 0, 2, 4, 2),
        RangeError,
        /gemmBatched: 'b' has 8 elements but 9 are needed/,
      ],
      ['softmax output too short', () => k.softmax(f(6), f(5), 2, 3, 1, 0, 0), RangeError, /softmax: 'y' has 5 elements but 6/],
      [
        'target out of range',
        () => k.crossEntropy(f(6), i32(0, 0, 3), f(3), 3, 2, -100),
        RangeError,
        /crossEntropy: targets\[2\] = 3 is outside \[0, 2\)/,
      ],
      [
        'float targets',
        () => k.crossEntropy(f(6), f(3) as unknown as Int32Array, f(3), 3, 2, -100),
        TypeError,
        /crossEntropy: argument 1 'targets' must be an Int32Array, got Float32Array/,
      ],
      [
        'undefined where array-or-null expected',
        () => k.rmsnormBackward(f(4), f(2), f(2), f(4), undefined as unknown as null, null, 2, 2),
        TypeError,
        /rmsnormBackward: argument 4 'dx' must be a Float32Array, got undefined/,
      ],
      ['odd headDim', () => k.rope(f(6), f(6), i32(0), f(4), f(4), 1, 2, 3, 1), RangeError, /rope: headDim = 3 must be even/],
      [
        'position past the tables',
        () => k.rope(f(4), f(4), i32(2), f(4), f(4), 1, 1, 4, 1),
        RangeError,
        /rope: positions\[0\] = 2 is outside the cos\/sin tables/,
      ],
      ['negative token id', () => k.embedding(f(6), i32(1, -1), f(6), 2, 3), RangeError, /embedding: ids\[1\] = -1 is outside \[0, 2\)/],
      ['token id ≥ vocab', () => k.embeddingBackward(f(6), i32(2, 0), f(6), 2, 3), RangeError, /embeddingBackward: ids\[0\] = 2/],
      [
        'short optimizer state',
        () => k.adamw(f(4), f(4), f(4), f(3), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001),
        RangeError,
        /adamw: 'v' has 3 elements but 4/,
      ],
      ['setThreads(0)', () => k.setThreads(0), RangeError, /setThreads: n = 0 must be in \[1, 1024\]/],
    ];
    for (const [what, call, type, message] of cases) {
      assert.throws(
        call,
        (err: unknown) => {
          assert.ok(err instanceof type, `${what}: expected ${type.name}, got ${String(err)}`);
          assert.match((err as Error).message, message, what);
          return true;
        },
        `${what}: did not throw`,
      );
    }
    // still alive and correct afterwards
    const c = f(1);
    k.gemm(false, false, 1, 1, 1, 1, Float32Array.of(3), 0, 1, Float32Array.of(4), 0, 1, 0, c, 0, 1);
    assert.equal(c[0], 12);
  });

  test('the reference kernels raise the same index errors', () => {
    assert.throws(() => ref.gemm(false, false, 2, 2, 2, 1, f(4), 1, 2, f(4), 0, 2, 0, f(4), 0, 2), RangeError);
    assert.throws(() => ref.gemm(false, false, 2, 3, 2, 1, f(4), 0, 2, f(6), 0, 2, 0, f(6), 0, 3), /ldb = 2/);
    assert.throws(() => ref.crossEntropy(f(6), i32(0, 0, 3), f(3), 3, 2, -100), /targets\[2\] = 3/);
    assert.throws(() => ref.embedding(f(6), i32(1, -1), f(6), 2, 3), /ids\[1\] = -1/);
    assert.throws(() => ref.rope(f(4), f(4), i32(2), f(4), f(4), 1, 1, 4, 1), /positions\[0\] = 2/);
  });

  test('NativeInfo: core name, config, threads', () => {
    const k = nativeKernels();
    assert.equal(k.name, 'native');
    assert.ok(k.coreName().length > 0, 'empty core name');
    if (process.env.OPENBLAS_CORETYPE === 'SkylakeX') assert.equal(k.coreName(), 'SkylakeX');
    assert.match(k.config(), /OpenBLAS/);
    const before = k.getThreads();
    k.setThreads(2);
    assert.equal(k.getThreads(), 2);
    k.setThreads(before);
    assert.equal(k.getThreads(), before);
  });
});
