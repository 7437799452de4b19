/**
 * The training step's element-wise kernels (native/dropout.cc, twins src/kernels/reference-train.ts).
 * addScaled (add, scale, gradient accumulation): native = reference bit for bit, aliasing included.
 * Dropout and the `dropout` op over it:
 * the native masks, outputs and advanced generator states equal the twin's bit for bit at every thread count,
 * and the op's mask is exactly the row generators' own next draws (what the TypeScript loop drew before the
 * kernel existed), so training runs keep their numbers.
 *
 * Run: node --import tsx --test test/kernels/train-kernels.test.ts   (build the addon first: npm run build:native)
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { Rng, Tensor, add, backward, dropout, scale, sum } from '../../src/tensor/index.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';

after(restoreNativeDefaults);

/** 4 state words per row, from rows generators derived from `seed`. */
function rowStates(seed: number, rows: number): Uint32Array {
  const states = new Uint32Array(4 * rows);
  for (let b = 0; b < rows; b++) new Rng(seed).derive(`row ${b}`).writeWords(states, 4 * b);
  return states;
}

function run(k: typeof ref, x: Float32Array, rows: number, p: number): { out: Float32Array; keep: Uint8Array; states: Uint32Array } {
  const out = new Float32Array(x.length).fill(Number.NaN),
    keep = new Uint8Array(x.length).fill(7),
    states = rowStates(11, rows);
  k.dropout(x, out, keep, x.length, states, rows, Math.floor(p * 4294967296), 1 / (1 - p));
  return { out, keep, states };
}

function assertSame(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]}`);
}

describe('training element-wise kernels', () => {
  const rng = seededUniform(0xd40);
  const k = nativeKernels();

  test('native = reference bit for bit (mask, output, states), 1 to 3 threads, every element overwritten', () => {
    for (const [rows, cols, p] of [
      [1, 37, 0.1],
      [3, 2000, 0.3],
      [8, 4100, 0.5],
      [2, 16 * 300 + 7, 0.2], // the 16-lane path: segments of 300 (not a multiple of 64 draws) and a tail of 7
    ] as const) {
      const x = randF32(rng, rows * cols);
      const want = run(ref, x, rows, p);
      for (const threads of [1, 2, 3]) {
        k.setThreads(threads);
        const got = run(k, x, rows, p);
        assertSame(`out ${rows}x${cols} (${threads} threads)`, got.out, want.out);
        assertSame(`keep ${rows}x${cols} (${threads} threads)`, got.keep, want.keep);
        assertSame(`states ${rows}x${cols} (${threads} threads)`, got.states, want.states);
      }
      const dropped = want.keep.filter((v) => v === 0).length / x.length;
      assert.ok(Math.abs(dropped - p) < 0.1, `about ${p} dropped, got ${dropped}`);
      const dy = randF32(rng, x.length),
        dxN = new Float32Array(x.length).fill(Number.NaN),
        dxR = new Float32Array(x.length);
      k.dropoutBackward(dy, want.keep, dxN, x.length, 1 / (1 - p));
      ref.dropoutBackward(dy, want.keep, dxR, x.length, 1 / (1 - p));
      assertSame(`dropoutBackward ${rows}x${cols}`, dxN, dxR);
    }
    k.setThreads(1);
  });

  test('addScaled: a + round(b·s), b·s alone, in place; native = reference bit for bit at 1 to 3 threads; the ops add and scale use it', () => {
    const n = 70001,
      a = randF32(rng, n),
      b = randF32(rng, n, 3);
    for (const s of [1, 0.37, -2]) {
      for (const withA of [true, false]) {
        const want = new Float32Array(n),
          got = new Float32Array(n).fill(Number.NaN);
        ref.addScaled(withA ? a : null, b, want, n, s);
        for (const threads of [1, 2, 3]) {
          k.setThreads(threads);
          k.addScaled(withA ? a : null, b, got, n, s);
          assertSame(`addScaled s ${s}${withA ? '' : ' (no a)'}, ${threads} threads`, got, want);
        }
        k.setThreads(1);
        for (const i of [0, 1234, n - 1]) assert.equal(want[i], Math.fround((withA ? a[i] : 0) + Math.fround(b[i] * s)), `element ${i}`);
        const inPlace = a.slice();
        k.addScaled(withA ? inPlace : null, b, inPlace, n, s);
        assertSame(`addScaled into a, s ${s}`, inPlace, want);
      }
    }
    const x = new Tensor(a, [n]),
      y = new Tensor(b, [n]);
    assertSame(
      'add',
      add(x, y).data,
      Float32Array.from(a, (v, i) => v + b[i]),
    );
    assertSame(
      'scale',
      scale(x, 0.37).data,
      Float32Array.from(a, (v) => v * 0.37),
    );
  });

  test('argument errors name the kernel and the argument', () => {
    assert.throws(
      () => k.addScaled(new Float32Array(3), new Float32Array(4), new Float32Array(4), 4, 1),
      /addScaled: 'a' has 3 elements but 4/,
    );
    const f = (n: number) => new Float32Array(n);
    assert.throws(
      () => k.dropout(f(10), f(10), new Uint8Array(10), 10, new Uint32Array(12), 3, 0, 1),
      /dropout: 10 elements do not split into 3 rows/,
    );
    assert.throws(
      () => k.dropout(f(12), f(12), new Uint8Array(12), 12, new Uint32Array(8), 3, 0, 1),
      /dropout: 'states' has 8 elements but 12/,
    );
    assert.throws(
      () => k.dropout(f(4), f(4), f(4) as unknown as Uint8Array, 4, new Uint32Array(4), 1, 0, 1),
      /dropout: argument 2 'keep' must be a Uint8Array, got Float32Array/,
    );
    assert.throws(
      () => ref.dropout(f(10), f(10), new Uint8Array(10), 10, new Uint32Array(12), 3, 0, 1),
      /dropout: 10 elements do not split into 3 rows/,
    );
  });

  test('the op draws each row from its own generator: mask = next draws ≥ p·2³², generators advanced past them (float32 and float64)', () => {
    const rows = 3,
      cols = 500,
      p = 0.25;
    for (const data of [randF32(rng, rows * cols), Float64Array.from(randF32(rng, rows * cols))]) {
      const rngs = Array.from({ length: rows }, (_, b) => new Rng(5).derive(`r${b}`));
      const shadow = rngs.map((r) => r.clone());
      const x = new Tensor(data, [rows, cols]);
      x.requiresGrad = true;
      const y = dropout(x, p, rngs);
      const scale = 1 / (1 - p),
        stored = data instanceof Float64Array ? (v: number) => v : Math.fround;
      for (let b = 0; b < rows; b++) {
        for (let j = 0; j < cols; j++) {
          const i = b * cols + j;
          const kept = shadow[b].nextUint32() >= Math.floor(p * 4294967296);
          assert.equal(y.data[i], kept ? stored(data[i] * scale) : 0, `element ${i}`);
        }
        assert.equal(rngs[b].nextUint32(), shadow[b].nextUint32(), `row ${b}: the generator continues after its draws`);
      }
      backward(sum(y));
      y.data.forEach((v, i) => assert.equal(x.grad!.data[i], v === 0 ? 0 : stored(scale), `gradient ${i}`));
    }
  });
});
