/**
 * Native (OpenBLAS + C++) vs reference (TypeScript) kernels on random float32 data and awkward shapes
 * (argument validation: kernel-args.test.ts; the reference kernels on Float64Array: float64.test.ts).
 *
 * Run: node --import tsx --test test/kernels/twins.test.ts   (build the addon first: npm run build:native)
 *
 * Default tolerance for float32 twins: |native − reference| ≤ 1e-6 + 1e-5·|reference| (stated per test
 * where it differs). The reference computes in double, so this bounds the native float32 error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels } from '../helpers/native.ts';
import { ATOL, RTOL, assertClose, randInts, ropeTables, twin } from './helpers.ts';

// ---------------------------------------------------------------------------------------------
// GEMM

interface GemmCase {
  name: string;
  tA: boolean;
  tB: boolean;
  m: number;
  n: number;
  k: number;
  alpha?: number;
  beta?: number;
  aPad?: number;
  bPad?: number;
  cPad?: number;
  aOff?: number;
  bOff?: number;
  cOff?: number;
  nanC?: boolean;
}

const GEMM_CASES: GemmCase[] = [
  { name: 'odd sizes', tA: false, tB: false, m: 17, n: 13, k: 29 },
  { name: '1 row', tA: false, tB: false, m: 1, n: 37, k: 19 },
  { name: '1 column', tA: false, tB: false, m: 23, n: 1, k: 31 },
  { name: 'k = 1', tA: false, tB: false, m: 9, n: 11, k: 1, beta: 1 },
  { name: 'transposed A', tA: true, tB: false, m: 15, n: 14, k: 33, beta: 0.5 },
  { name: 'transposed B', tA: false, tB: true, m: 15, n: 14, k: 33, alpha: 2 },
  { name: 'both transposed', tA: true, tB: true, m: 7, n: 19, k: 12, beta: -1 },
  {
    name: 'sub-matrix views (offsets, ld > width)',
    tA: false,
    tB: false,
    m: 10,
    n: 9,
    k: 21,
    alpha: -0.75,
    beta: 0.5,
    aPad: 5,
    bPad: 3,
    cPad: 4,
    aOff: 7,
    bOff: 3,
    cOff: 11,
  },
  {
    name: 'transposed sub-matrix views',
    tA: true,
    tB: true,
    m: 13,
    n: 6,
    k: 8,
    alpha: 1.5,
    beta: 1,
    aPad: 2,
    bPad: 7,
    cPad: 1,
    aOff: 1,
    bOff: 30,
    cOff: 5,
  },
  { name: 'beta = 0 ignores NaN in C', tA: false, tB: true, m: 6, n: 5, k: 4, beta: 0, cPad: 2, cOff: 3, nanC: true },
  { name: 'k = 0 scales C by beta', tA: false, tB: false, m: 4, n: 3, k: 0, beta: 2 },
  // m = 1 / n = 1 run through sgemv in the native kernel (decode path): every transpose, views, NaN C
  { name: 'gemv: 1 row, transposed B (x·Wᵀ)', tA: false, tB: true, m: 1, n: 29, k: 17, bPad: 3, bOff: 5, cOff: 2 },
  { name: 'gemv: 1 row, transposed A with lda', tA: true, tB: false, m: 1, n: 12, k: 9, aPad: 4, aOff: 1, beta: 0.5 },
  { name: 'gemv: 1 row, both transposed, NaN C', tA: true, tB: true, m: 1, n: 8, k: 6, aPad: 2, beta: 0, nanC: true },
  { name: 'gemv: 1 column, transposed A', tA: true, tB: false, m: 14, n: 1, k: 11, bPad: 2, cPad: 3, cOff: 1, alpha: -1.5 },
  { name: 'gemv: 1 column, transposed B, beta 1', tA: false, tB: true, m: 10, n: 1, k: 7, aPad: 1, cPad: 2, beta: 1 },
  { name: 'gemv: 1 × 1', tA: false, tB: false, m: 1, n: 1, k: 5, beta: 0, nanC: true },
  { name: 'larger blocked', tA: true, tB: false, m: 96, n: 70, k: 130, beta: 0.25, aPad: 3, cPad: 9, cOff: 2 },
];

/** Storage for a row-major (rows, cols) operand with row stride cols + pad at offset off, plus slack. */
function operand(rng: () => number, rows: number, cols: number, pad: number, off: number) {
  const ld = Math.max(1, cols + pad);
  return { ld, array: randF32(rng, off + rows * ld + 3) };
}

describe('native vs reference: gemm', () => {
  for (const cs of GEMM_CASES) {
    // Tolerance: rtol 1e-5, atol 1e-6·max(1, √k/4) — float32 sgemm accumulation vs a double reference.
    test(cs.name, () => {
      const rng = seededUniform(0x6e33 + cs.m * 131 + cs.n * 17 + cs.k);
      const { tA, tB, m, n, k } = cs;
      const alpha = cs.alpha ?? 1,
        beta = cs.beta ?? 0;
      const aOff = cs.aOff ?? 0,
        bOff = cs.bOff ?? 0,
        cOff = cs.cOff ?? 0;
      const A = operand(rng, tA ? k : m, tA ? m : k, cs.aPad ?? 0, aOff);
      const B = operand(rng, tB ? n : k, tB ? k : n, cs.bPad ?? 0, bOff);
      const C = operand(rng, m, n, cs.cPad ?? 0, cOff);
      const inside = (i: number) => i >= cOff && i < cOff + m * C.ld && (i - cOff) % C.ld < n;
      if (cs.nanC)
        C.array.forEach((_, i) => {
          if (inside(i)) C.array[i] = NaN;
        });
      const original = C.array.slice();

      const { n: nat, r } = twin({ a: A.array, b: B.array, c: C.array }, (kern, x) =>
        kern.gemm(tA, tB, m, n, k, alpha, x.a, aOff, A.ld, x.b, bOff, B.ld, beta, x.c, cOff, C.ld),
      );

      assertClose('gemm C', nat.c, r.c, RTOL, ATOL * Math.max(1, Math.sqrt(k) / 4));
      for (let i = 0; i < original.length; i++) {
        if (!inside(i)) {
          assert.ok(Object.is(nat.c[i], original[i]) && Object.is(r.c[i], original[i]), `element ${i} outside C changed`);
        } else if (cs.nanC) {
          assert.ok(!Number.isNaN(nat.c[i]) && !Number.isNaN(r.c[i]), `C[${i}] kept NaN with beta = 0`);
        }
      }
    });
  }

  // Tolerance: rtol 1e-5, atol 1e-6.
  for (const [tA, tB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    test(`gemmBatched with strides and offsets (transA=${tA}, transB=${tB})`, () => {
      const rng = seededUniform(0xba7c + (tA ? 1 : 0) + (tB ? 2 : 0));
      const m = 5,
        n = 7,
        k = 6,
        batch = 4;
      const lda = (tA ? m : k) + 2,
        ldb = (tB ? k : n) + 1,
        ldc = n + 3;
      const strideA = (tA ? k : m) * lda + 5,
        strideC = m * ldc + 1;
      const aOff = 3,
        bOff = 2,
        cOff = 4;
      const a = randF32(rng, aOff + batch * strideA);
      const b = randF32(rng, bOff + (tB ? n : k) * ldb); // strideB = 0: one B shared by all batches
      const c = randF32(rng, cOff + batch * strideC);
      const { n: nat, r } = twin({ a, b, c }, (kern, x) =>
        kern.gemmBatched(tA, tB, m, n, k, 0.5, x.a, aOff, lda, strideA, x.b, bOff, ldb, 0, 1.25, x.c, cOff, ldc, strideC, batch),
      );
      assertClose('gemmBatched C', nat.c, r.c);
      // and each batch equals a single gemm on the same views
      const single = c.slice();
      for (let i = 0; i < batch; i++) {
        nativeKernels().gemm(tA, tB, m, n, k, 0.5, a, aOff + i * strideA, lda, b, bOff, ldb, 1.25, single, cOff + i * strideC, ldc);
      }
      assert.deepEqual(nat.c, single);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Softmax

describe('native vs reference: softmax', () => {
  const cases = [
    { name: 'no mask', rows: 7, cols: 13, scale: 0.37, causalRows: 0, causalShift: 0 },
    { name: 'causal, KV cache (causalShift > 0)', rows: 10, cols: 9, scale: 0.5, causalRows: 5, causalShift: 4 },
    { name: 'causal square (causalShift = 0)', rows: 12, cols: 6, scale: 1, causalRows: 6, causalShift: 0 },
    { name: '1 column', rows: 4, cols: 1, scale: 2, causalRows: 0, causalShift: 0 },
    { name: '1 row, wide', rows: 1, cols: 301, scale: 0.125, causalRows: 0, causalShift: 0 },
  ];
  for (const cs of cases) {
    // Tolerance: rtol 1e-5, atol 1e-6; masked entries exactly 0; kept entries sum to 1 within 1e-6.
    test(cs.name, () => {
      const rng = seededUniform(0x50f7 + cs.rows * 7 + cs.cols);
      const { rows, cols, scale, causalRows, causalShift } = cs;
      const x = randF32(rng, rows * cols, 6);
      const fwd = twin({ x, y: new Float32Array(rows * cols) }, (kern, a) =>
        kern.softmax(a.x, a.y, rows, cols, scale, causalRows, causalShift),
      );
      assertClose('softmax y', fwd.n.y, fwd.r.y);
      for (let r = 0; r < rows; r++) {
        const keep = causalRows ? Math.min(cols, (r % causalRows) + causalShift + 1) : cols;
        let sum = 0;
        for (let j = 0; j < cols; j++) {
          if (j >= keep) assert.ok(fwd.n.y[r * cols + j] === 0 && fwd.r.y[r * cols + j] === 0, `masked y[${r},${j}] not 0`);
          sum += fwd.n.y[r * cols + j];
        }
        assert.ok(Math.abs(sum - 1) < 1e-6, `row ${r} sums to ${sum}`);
      }

      // in place (x and y alias) gives the same result
      const inPlace = x.slice();
      nativeKernels().softmax(inPlace, inPlace, rows, cols, scale, causalRows, causalShift);
      assert.deepEqual(inPlace, fwd.n.y);

      // backward, from the same (masked) probabilities
      const dy = randF32(rng, rows * cols);
      const bwd = twin({ y: fwd.r.y, dy, dx: new Float32Array(rows * cols) }, (kern, a) =>
        kern.softmaxBackward(a.y, a.dy, a.dx, rows, cols, scale),
      );
      assertClose('softmaxBackward dx', bwd.n.dx, bwd.r.dx);
      for (let i = 0; i < rows * cols; i++) {
        if (fwd.r.y[i] === 0) assert.ok(bwd.n.dx[i] === 0 && bwd.r.dx[i] === 0, `masked dx[${i}] not 0`);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Cross-entropy

describe('native vs reference: crossEntropy', () => {
  // Tolerance: loss and lse rtol 1e-5 (summed in double on both sides); dlogits rtol 1e-5, atol 1e-6.
  test('odd vocab, ignored rows, forward + backward (+ in place)', () => {
    const rng = seededUniform(0xce);
    const rows = 9,
      vocab = 37,
      ignoreIndex = -100;
    const logits = randF32(rng, rows * vocab, 5);
    const targets = randInts(rng, rows, 0, vocab);
    targets[2] = ignoreIndex;
    targets[7] = ignoreIndex;
    targets[0] = vocab - 1;
    targets[1] = 0;
    const kept = rows - 2;

    const fwd = twin({ logits, targets, lse: new Float32Array(rows) }, (kern, a) =>
      kern.crossEntropy(a.logits, a.targets as Int32Array, a.lse, rows, vocab, ignoreIndex),
    );
    assertClose('crossEntropy lse', fwd.n.lse, fwd.r.lse);
    assertClose('crossEntropy loss', [fwd.nativeResult], [fwd.refResult]);
    assert.ok(fwd.refResult / kept > 0 && fwd.refResult / kept < 20, `mean loss ${fwd.refResult / kept}`);

    const lse = fwd.r.lse;
    const bwd = twin({ logits, targets, lse, d: new Float32Array(rows * vocab).fill(7) }, (kern, a) =>
      kern.crossEntropyBackward(a.logits, a.targets as Int32Array, a.lse, rows, vocab, ignoreIndex, 1 / kept, a.d),
    );
    assertClose('crossEntropyBackward dlogits', bwd.n.d, bwd.r.d);
    for (const r of [2, 7]) {
      assert.ok(
        bwd.n.d.subarray(r * vocab, (r + 1) * vocab).every((v) => v === 0),
        `ignored row ${r} not zeroed`,
      );
    }
    for (let r = 0; r < rows; r++) {
      if (targets[r] === ignoreIndex) continue;
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += bwd.n.d[r * vocab + j];
      assert.ok(Math.abs(sum) < 1e-6, `dlogits row ${r} sums to ${sum}, expected 0`);
    }

    // dlogits may alias logits
    const inPlace = logits.slice();
    nativeKernels().crossEntropyBackward(inPlace, targets, lse, rows, vocab, ignoreIndex, 1 / kept, inPlace);
    assert.deepEqual(inPlace, bwd.n.d);
  });
});

// ---------------------------------------------------------------------------------------------
// RMSNorm

describe('native vs reference: rmsnorm', () => {
  // Tolerance: rtol 1e-5, atol 1e-6 (dw: atol 1e-6·rows, it sums over rows).
  for (const [rows, dim] of [
    [5, 23],
    [1, 1],
    [3, 64],
  ] as const) {
    test(`forward and backward, rows=${rows} dim=${dim}, dx/dw null combinations`, () => {
      const rng = seededUniform(0x3a5 + rows * 100 + dim);
      const eps = 1e-5;
      const x = randF32(rng, rows * dim, 2);
      if (rows > 2) x.fill(0, 2 * dim, 3 * dim); // an all-zero row: rstd = 1/sqrt(eps)
      const w = randF32(rng, dim, 1.5);
      const fwd = twin({ x, w, y: new Float32Array(rows * dim), rstd: new Float32Array(rows) }, (kern, a) =>
        kern.rmsnorm(a.x, a.w, a.y, a.rstd, rows, dim, eps),
      );
      assertClose('rmsnorm y', fwd.n.y, fwd.r.y);
      assertClose('rmsnorm rstd', fwd.n.rstd, fwd.r.rstd);

      const dy = randF32(rng, rows * dim);
      const rstd = fwd.r.rstd;
      for (const [wantDx, wantDw] of [
        [true, true],
        [true, false],
        [false, true],
        [false, false],
      ] as const) {
        const sentinel = 42;
        const bwd = twin({ dx: new Float32Array(rows * dim).fill(sentinel), dw: new Float32Array(dim).fill(sentinel) }, (kern, a) =>
          kern.rmsnormBackward(x, w, rstd, dy, wantDx ? a.dx : null, wantDw ? a.dw : null, rows, dim),
        );
        if (wantDx) assertClose('rmsnormBackward dx', bwd.n.dx, bwd.r.dx);
        else
          assert.ok(
            bwd.n.dx.every((v) => v === sentinel),
            'dx written although null was passed',
          );
        if (wantDw) assertClose('rmsnormBackward dw', bwd.n.dw, bwd.r.dw, RTOL, ATOL * rows);
        else
          assert.ok(
            bwd.n.dw.every((v) => v === sentinel),
            'dw written although null was passed',
          );
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Activations

describe('native vs reference: silu / swiglu', () => {
  const rng = seededUniform(0x511);
  const n = 1001;
  const special = [-100, -88, -20, -1e-3, 0, 1e-3, 20, 88, 100];
  const x = randF32(rng, n, 8);
  x.set(special);
  const up = randF32(rng, n, 3);
  const dy = randF32(rng, n);

  // Tolerance: rtol 1e-5, atol 1e-6.
  test('silu and siluBackward', () => {
    const fwd = twin({ x, y: new Float32Array(n) }, (kern, a) => kern.silu(a.x, a.y, n));
    assertClose('silu y', fwd.n.y, fwd.r.y);
    const bwd = twin({ x, dy, dx: new Float32Array(n) }, (kern, a) => kern.siluBackward(a.x, a.dy, a.dx, n));
    assertClose('siluBackward dx', bwd.n.dx, bwd.r.dx);
  });

  test('swiglu and swigluBackward with dgate / dup null', () => {
    const fwd = twin({ x, up, out: new Float32Array(n) }, (kern, a) => kern.swiglu(a.x, a.up, a.out, n));
    assertClose('swiglu out', fwd.n.out, fwd.r.out);
    for (const [wantG, wantU] of [
      [true, true],
      [true, false],
      [false, true],
    ] as const) {
      const bwd = twin({ dg: new Float32Array(n).fill(9), du: new Float32Array(n).fill(9) }, (kern, a) =>
        kern.swigluBackward(x, up, dy, wantG ? a.dg : null, wantU ? a.du : null, n),
      );
      if (wantG) assertClose('swigluBackward dgate', bwd.n.dg, bwd.r.dg);
      else
        assert.ok(
          bwd.n.dg.every((v) => v === 9),
          'dgate written although null was passed',
        );
      if (wantU) assertClose('swigluBackward dup', bwd.n.du, bwd.r.du);
      else
        assert.ok(
          bwd.n.du.every((v) => v === 9),
          'dup written although null was passed',
        );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// RoPE

describe('native vs reference: rope', () => {
  // Tolerance: rtol 1e-5, atol 1e-6 (forward, and forward∘backward vs the input).
  test('forward, backward (sign −1) restores the input, in place', () => {
    const rng = seededUniform(0x40e);
    const nTok = 6,
      nHeads = 3,
      headDim = 10,
      maxPos = 16;
    const { cos, sin } = ropeTables(maxPos, headDim);
    const positions = Int32Array.from([0, 15, 3, 3, 7, 1]);
    const x = randF32(rng, nTok * nHeads * headDim, 2);
    const size = x.length;
    const fwd = twin({ x, out: new Float32Array(size) }, (kern, a) => kern.rope(a.x, a.out, positions, cos, sin, nTok, nHeads, headDim, 1));
    assertClose('rope out', fwd.n.out, fwd.r.out);
    for (const kern of [nativeKernels(), ref]) {
      const back = new Float32Array(size);
      kern.rope(fwd.n.out, back, positions, cos, sin, nTok, nHeads, headDim, -1);
      assertClose(`rope backward∘forward (${kern.name})`, back, x);
    }
    const inPlace = x.slice();
    nativeKernels().rope(inPlace, inPlace, positions, cos, sin, nTok, nHeads, headDim, 1);
    assert.deepEqual(inPlace, fwd.n.out);
  });
});

// ---------------------------------------------------------------------------------------------
// Embedding

describe('native vs reference: embedding', () => {
  test('lookup (exact) and scatter-add backward with repeated ids (rtol 1e-5, atol 1e-6)', () => {
    const rng = seededUniform(0xe3b);
    const vocab = 11,
      dim = 7,
      n = 20;
    const w = randF32(rng, vocab * dim);
    const ids = randInts(rng, n, 0, vocab);
    ids.set([3, 3, 3, 0, vocab - 1]);
    const fwd = twin({ w, out: new Float32Array(n * dim) }, (kern, a) => kern.embedding(a.w, ids, a.out, n, dim));
    assert.deepEqual(fwd.n.out, fwd.r.out);
    for (let t = 0; t < n; t++) {
      assert.deepEqual(fwd.n.out.subarray(t * dim, (t + 1) * dim), w.subarray(ids[t] * dim, (ids[t] + 1) * dim));
    }
    const dy = randF32(rng, n * dim);
    const dw0 = randF32(rng, vocab * dim); // scatter-ADDS into existing gradient
    const bwd = twin({ dw: dw0 }, (kern, a) => kern.embeddingBackward(dy, ids, a.dw, n, dim));
    assertClose('embeddingBackward dw', bwd.n.dw, bwd.r.dw);
    const untouched = [...Array(vocab).keys()].filter((v) => !ids.includes(v));
    for (const v of untouched) assert.deepEqual(bwd.n.dw.subarray(v * dim, (v + 1) * dim), dw0.subarray(v * dim, (v + 1) * dim));
  });
});

// ---------------------------------------------------------------------------------------------
// AdamW

describe('native vs reference: adamw', () => {
  // Tolerance: rtol 1e-5, atol 1e-6 on p, m, v after every step.
  test('five steps', () => {
    const rng = seededUniform(0xada);
    const n = 1003;
    const lr = 1e-3,
      beta1 = 0.9,
      beta2 = 0.999,
      eps = 1e-8,
      weightDecay = 0.1;
    const state = {
      n: { p: randF32(rng, n), m: new Float32Array(n), v: new Float32Array(n) },
      r: { p: new Float32Array(0), m: new Float32Array(0), v: new Float32Array(0) },
    };
    state.r = { p: state.n.p.slice(), m: state.n.m.slice(), v: state.n.v.slice() };
    const p0 = state.n.p.slice();
    for (let step = 1; step <= 5; step++) {
      const g = randF32(rng, n, 0.1);
      const bc1 = 1 - beta1 ** step,
        bc2 = 1 - beta2 ** step;
      nativeKernels().adamw(state.n.p, g, state.n.m, state.n.v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
      ref.adamw(state.r.p, g, state.r.m, state.r.v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
      assertClose(`adamw p (step ${step})`, state.n.p, state.r.p);
      assertClose(`adamw m (step ${step})`, state.n.m, state.r.m);
      assertClose(`adamw v (step ${step})`, state.n.v, state.r.v);
    }
    // sanity: each step moves a parameter by about lr, so five steps move it by at most ~5·lr (+ decay)
    for (let i = 0; i < n; i++) assert.ok(Math.abs(state.n.p[i] - p0[i]) < 6 * lr, `p[${i}] moved too far`);
  });
});
