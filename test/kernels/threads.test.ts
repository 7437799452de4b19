/**
 * The native kernels split their work over one pool (native/pool.h) of setThreads(n) threads. Every split is
 * over independent items (rows, output columns, whole runs of an element-wise loop), so 1, 2 and 3 threads
 * must give bit-identical results; the shapes here are large enough to be split.
 *
 * Run: node --import tsx --test test/kernels/threads.test.ts   (build the addon first: npm run build:native)
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels, restoreNativeDefaults } from '../helpers/native.ts';

after(restoreNativeDefaults);

function assertBitEqual(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: element ${i} is ${got[i]} at more threads, ${want[i]} at 1`);
  }
}

/** Runs `compute` at 1, 2 and 3 threads and checks every output array is bit-identical to the 1-thread one. */
function sameAtEveryThreadCount(what: string, compute: () => ArrayLike<number>[]): void {
  const k = nativeKernels();
  k.setThreads(1);
  const one = compute();
  for (const threads of [2, 3]) {
    k.setThreads(threads);
    assert.equal(k.compressedThreads(), threads, 'setThreads sets the pool too');
    const many = compute();
    one.forEach((want, i) => assertBitEqual(`${what} (output ${i}, ${threads} threads)`, many[i], want));
  }
  k.setThreads(1);
}

describe('native kernels: results independent of the thread count', () => {
  const rng = seededUniform(0x7e4d);
  const k = nativeKernels();

  test('softmax (causal) and softmaxBackward', () => {
    const rows = 96,
      cols = 700,
      x = randF32(rng, rows * cols, 4),
      dy = randF32(rng, rows * cols);
    sameAtEveryThreadCount('softmax', () => {
      const y = new Float32Array(rows * cols),
        dx = new Float32Array(rows * cols);
      k.softmax(x, y, rows, cols, 0.7, 32, 600);
      k.softmaxBackward(y, dy, dx, rows, cols, 0.7);
      return [y, dx];
    });
  });

  test('crossEntropy (with ignored rows) and its backward', () => {
    const rows = 24,
      vocab = 5000,
      logits = randF32(rng, rows * vocab, 6);
    const targets = Int32Array.from({ length: rows }, (_, r) => (r % 5 === 0 ? -100 : (r * 977) % vocab));
    sameAtEveryThreadCount('crossEntropy', () => {
      const lse = new Float32Array(rows),
        d = new Float32Array(rows * vocab);
      const total = k.crossEntropy(logits, targets, lse, rows, vocab, -100);
      k.crossEntropyBackward(logits, targets, lse, rows, vocab, -100, 0.05, d);
      return [[total], lse, d];
    });
  });

  test('rmsnorm and rmsnormBackward (dx split over rows, dw over columns)', () => {
    const rows = 200,
      dim = 576,
      x = randF32(rng, rows * dim),
      w = randF32(rng, dim),
      dy = randF32(rng, rows * dim);
    sameAtEveryThreadCount('rmsnorm', () => {
      const y = new Float32Array(rows * dim),
        rstd = new Float32Array(rows);
      const dx = new Float32Array(rows * dim),
        dw = new Float32Array(dim);
      k.rmsnorm(x, w, y, rstd, rows, dim, 1e-5);
      k.rmsnormBackward(x, w, rstd, dy, dx, dw, rows, dim);
      return [y, rstd, dx, dw];
    });
  });

  test('silu, swiglu and their backward passes; adamw', () => {
    const n = 100_003,
      a = randF32(rng, n, 8),
      b = randF32(rng, n),
      d = randF32(rng, n);
    sameAtEveryThreadCount('element-wise', () => {
      const y = new Float32Array(n),
        dx = new Float32Array(n),
        o = new Float32Array(n);
      const dg = new Float32Array(n),
        du = new Float32Array(n);
      k.silu(a, y, n);
      k.siluBackward(a, d, dx, n);
      k.swiglu(a, b, o, n);
      k.swigluBackward(a, b, d, dg, du, n);
      const p = b.slice(),
        m = d.slice(),
        v = Float32Array.from(d, (t) => t * t);
      k.adamw(p, a, m, v, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0.19, 0.002);
      return [y, dx, o, dg, du, p, m, v];
    });
  });

  test('rope, embedding and embeddingBackward (repeated ids)', () => {
    const nTok = 64,
      nHeads = 9,
      headDim = 64,
      half = headDim / 2,
      maxPos = 128;
    const x = randF32(rng, nTok * nHeads * headDim),
      cos = randF32(rng, maxPos * half),
      sin = randF32(rng, maxPos * half);
    const positions = Int32Array.from({ length: nTok }, (_, t) => (t * 7) % maxPos);
    const vocab = 50,
      dim = 576,
      n = 300,
      table = randF32(rng, vocab * dim),
      dyE = randF32(rng, n * dim);
    const ids = Int32Array.from({ length: n }, (_, t) => (t * 13) % vocab);
    sameAtEveryThreadCount('rope/embedding', () => {
      const out = new Float32Array(x.length),
        e = new Float32Array(n * dim),
        dw = new Float32Array(vocab * dim).fill(0.25);
      k.rope(x, out, positions, cos, sin, nTok, nHeads, headDim, 1);
      k.embedding(table, ids, e, n, dim);
      k.embeddingBackward(dyE, ids, dw, n, dim);
      return [out, e, dw];
    });
  });

  test('attentionDecode: one row (keys and heads split) and a batch (rows split)', () => {
    const Hq = 9,
      Hkv = 3,
      D = 64,
      Tk = 700;
    for (const B of [1, 4]) {
      const stride = Tk * Hkv * D,
        q = randF32(rng, B * Hq * D),
        kc = randF32(rng, B * stride),
        vc = randF32(rng, B * stride);
      const keyStart = B === 1 ? null : Int32Array.from({ length: B }, (_, b) => b * 50);
      sameAtEveryThreadCount(`attentionDecode B = ${B}`, () => {
        const out = new Float32Array(B * Hq * D);
        k.attentionDecode(q, kc, vc, out, B, Tk, Hq, Hkv, D, stride, 0.125, keyStart);
        return [out];
      });
    }
  });

  test('compressedThreads(n) accepts any n in [1, 1024]: no fixed cap', () => {
    assert.equal(k.compressedThreads(3), 3);
    assert.equal(k.compressedThreads(64), 64);
    assert.throws(() => k.compressedThreads(1025), /compressedThreads: n = 1025 must be in \[1, 1024\]/);
    k.compressedThreads(1);
  });
});
