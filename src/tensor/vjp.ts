/**
 * THE table of vector-Jacobian rules, one per op in `OpSaved` (the mapped type `VjpTable` makes a missing
 * rule a compile error). A rule returns the gradient of each recorded input, or null where `wants[i]` is
 * false — skipping, for example, the weight-gradient GEMM of a frozen weight.
 */
import { kernelsFor } from '../kernels/index.ts';
import type { FloatArray } from '../kernels/api.ts';
import { Tensor, matrixOperand, numel, allocLike, allocOut } from './tensor.ts';
import { causalBlocks } from './attention-core.ts';
import type { VjpTable } from './op-types.ts';

function map(gy: Tensor, shape: readonly number[], f: (g: number, i: number) => number): Tensor {
  const g = gy.contiguousData();
  const out = allocOut(g, g.length);
  for (let i = 0; i < g.length; i++) out[i] = f(g[i], i);
  return new Tensor(out, shape);
}

export const vjpRules: VjpTable = {
  add: (_s, gy, wants) => [wants[0] ? gy : null, wants[1] ? gy : null],

  sub: (_s, gy, wants) => [wants[0] ? gy : null, wants[1] ? map(gy, gy.shape, (g) => -g) : null],

  mul: ({ a, b }, gy, wants) => {
    const ad = a.contiguousData(),
      bd = b.contiguousData();
    return [wants[0] ? map(gy, a.shape, (g, i) => g * bd[i]) : null, wants[1] ? map(gy, b.shape, (g, i) => g * ad[i]) : null];
  },

  maskMul: ({ mask, ld, cols }, gy) => [map(gy, gy.shape, (g, i) => g * mask.get(Math.floor(i / cols) * ld + (i % cols)))],

  scale: ({ s }, gy) => {
    const g = gy.contiguousData();
    const d = allocOut(g, g.length);
    kernelsFor(g).addScaled(null, g, d, g.length, s);
    return [new Tensor(d, gy.shape)];
  },

  sum: ({ shape, factor }, gy) => {
    const out = allocLike(gy.data, numel(shape));
    out.fill(gy.item() * factor);
    return [new Tensor(out, shape)];
  },

  reshape: ({ shape }, gy) => [new Tensor(gy.contiguousData(), shape)],

  narrow: ({ shape, dim, start }, gy) => {
    const full = new Tensor(allocLike(gy.data, numel(shape)), shape);
    // Write gy into the slice of `full` through a view with full's strides.
    const view = new Tensor(full.data, gy.shape, { strides: full.strides, offset: start * full.strides[dim] });
    scatterInto(view, gy.contiguousData());
    return [full];
  },

  permute: ({ dims }, gy) => {
    // Input axis dims[i] is output axis i: view gy with input-ordered axes, then densify.
    const inv = new Array<number>(dims.length);
    dims.forEach((d, i) => (inv[d] = i));
    const g = gy.isContiguous ? gy : new Tensor(gy.contiguousData(), gy.shape);
    const back = new Tensor(
      g.data,
      inv.map((i) => g.shape[i]),
      { strides: inv.map((i) => g.strides[i]), offset: g.offset },
    );
    return [new Tensor(back.contiguousData().slice(), back.shape)];
  },

  contiguous: (_s, gy) => [gy],

  linear: ({ x, xShape, w, hasBias }, gy, wants) => {
    const inF = w.shape[1],
      outF = w.shape[0];
    const g = gy.contiguousData();
    const rows = g.length / Math.max(outF, 1);
    const kern = kernelsFor(g);
    let dx: Tensor | null = null,
      dw: Tensor | null = null,
      db: Tensor | null = null;
    if (wants[0]) {
      // dx (rows, in) = gy (rows, out) · w (out, in)
      const wo = matrixOperand(w);
      const d = outF ? allocOut(g, rows * inF) : allocLike(g, rows * inF); // gemm β 0 writes every element
      if (rows && inF && outF) kern.gemm(false, wo.trans, rows, inF, outF, 1, g, 0, outF, wo.data, wo.off, wo.ld, 0, d, 0, inF);
      dx = new Tensor(d, xShape);
    }
    if (wants[1]) {
      // dw (out, in) = gyᵀ (out, rows) · x (rows, in)
      if (!x) throw new Error(`internal: linear's weight ${w.name ?? ''} was frozen in the forward and needs a gradient in backward`);
      const d = rows ? allocOut(g, outF * inF) : allocLike(g, outF * inF);
      if (rows && inF && outF) kern.gemm(true, false, outF, inF, rows, 1, g, 0, outF, x.contiguousData(), 0, inF, 0, d, 0, inF);
      dw = new Tensor(d, w.shape);
    }
    if (hasBias && wants[2]) {
      const d = allocLike(g, outF);
      for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) d[o] += g[r * outF + o];
      db = new Tensor(d, [outF]);
    }
    return hasBias ? [dx, dw, db] : [dx, dw];
  },

  linearBf16: ({ w, outF, inF, xShape, hasBias, compute }, gy, wants) => {
    const g = gy.contiguousData();
    const rows = g.length / Math.max(outF, 1);
    let dx: Tensor | null = null,
      db: Tensor | null = null;
    if (wants[0]) {
      // dx (rows, in) = gy (rows, out) · W[:out, :in], W stored (out, ·) with row stride w.shape[1]
      const d = outF ? allocOut(g, rows * inF) : allocLike(g, rows * inF);
      if (rows && inF && outF) kernelsFor(g).gemmBf16(false, rows, inF, outF, 1, g, 0, outF, w.bits, 0, w.shape[1], 0, d, 0, inF, compute);
      dx = new Tensor(d, xShape);
    }
    if (hasBias && wants[1]) {
      const d = allocLike(g, outF);
      for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) d[o] += g[r * outF + o];
      db = new Tensor(d, [outF]);
    }
    return hasBias ? [dx, db] : [dx];
  },

  matmul: ({ a, b }, gy, wants) => {
    const [m, k] = a.shape.slice(-2);
    const n = b.shape[b.ndim - 1];
    const batch = numel(a.shape.slice(0, -2));
    const g = gy.contiguousData();
    const kern = kernelsFor(g);
    let da: Tensor | null = null,
      db: Tensor | null = null;
    if (wants[0]) {
      const d = n > 0 ? allocOut(g, a.size) : allocLike(g, a.size); // (m, k) = gy (m, n) · bᵀ (n, k)
      kern.gemmBatched(false, true, m, k, n, 1, g, 0, n, m * n, b.contiguousData(), 0, n, k * n, 0, d, 0, k, m * k, batch);
      da = new Tensor(d, a.shape);
    }
    if (wants[1]) {
      const d = m > 0 ? allocOut(g, b.size) : allocLike(g, b.size); // (k, n) = aᵀ (k, m) · gy (m, n)
      kern.gemmBatched(true, false, k, n, m, 1, a.contiguousData(), 0, k, m * k, g, 0, n, m * n, 0, d, 0, n, k * n, batch);
      db = new Tensor(d, b.shape);
    }
    return [da, db];
  },

  embedding: ({ ids, vocab, dim }, gy) => {
    const g = gy.contiguousData();
    const dw = allocLike(g, vocab * dim);
    kernelsFor(g).embeddingBackward(g, ids, dw, ids.length, dim);
    return [new Tensor(dw, [vocab, dim])];
  },

  rmsnorm: ({ x, w, rstd }, gy, wants) => {
    const dim = w.shape[0];
    const g = gy.contiguousData();
    const dx = wants[0] ? allocLike(g, g.length) : null;
    const dw = wants[1] ? allocLike(g, dim) : null;
    kernelsFor(g).rmsnormBackward(x.contiguousData(), w.contiguousData(), rstd, g, dx, dw, g.length / dim, dim);
    return [dx && new Tensor(dx, x.shape), dw && new Tensor(dw, w.shape)];
  },

  silu: ({ x }, gy) => {
    const g = gy.contiguousData();
    const dx = allocOut(g, g.length);
    kernelsFor(g).siluBackward(x.contiguousData(), g, dx, g.length);
    return [new Tensor(dx, x.shape)];
  },

  swiglu: ({ gate, up }, gy, wants) => {
    const g = gy.contiguousData();
    const dg = wants[0] ? allocOut(g, g.length) : null;
    const du = wants[1] ? allocOut(g, g.length) : null;
    kernelsFor(g).swigluBackward(gate.contiguousData(), up.contiguousData(), g, dg, du, g.length);
    return [dg && new Tensor(dg, gate.shape), du && new Tensor(du, up.shape)];
  },

  rope: ({ positions, cos, sin }, gy) => {
    const [b, t, h, d] = gy.shape;
    const g = gy.contiguousData();
    const dx = allocOut(g, g.length);
    kernelsFor(g).rope(g, dx, positions, cos, sin, b * t, h, d, -1);
    return [new Tensor(dx, gy.shape)];
  },

  softmax: ({ y, scale }, gy) => {
    const cols = y.shape[y.ndim - 1];
    const g = gy.contiguousData();
    const dx = allocLike(g, g.length);
    kernelsFor(g).softmaxBackward(y.contiguousData(), g, dx, g.length / cols, cols, scale);
    return [new Tensor(dx, y.shape)];
  },

  attention: ({ q, k, v, probs, scale, causal }, gy, wants) => {
    const [B, Tq, Hq, D] = q.shape;
    const [, Tk, Hkv] = k.shape;
    const group = Hq / Hkv;
    const g = gy.contiguousData();
    const qd = q.contiguousData(),
      kd = k.contiguousData(),
      vd = v.contiguousData();
    const kern = kernelsFor(g);
    const dq = wants[0] ? allocLike(g, q.size) : null;
    const dk = wants[1] ? allocLike(g, k.size) : null;
    const dv = wants[2] ? allocLike(g, v.size) : null;
    const dScores = allocLike(g, probs.length); // (B, Hq, Tq, Tk): first dP, then (in place) d(raw scores)
    const blocks = causalBlocks({ Tq, Tk, causal }); // keys beyond a causal block have P = 0: skip them
    const rows = B * Hq * Tq;
    if (dq || dk) {
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < Hq; h++) {
          // dP (rows, keys) = gy_bh (rows, D) · v_bhᵀ (D, keys)
          const vOff = b * Tk * Hkv * D + Math.floor(h / group) * D;
          for (const [r0, r1, keys] of blocks)
            kern.gemm(
              false,
              true,
              r1 - r0,
              keys,
              D,
              1,
              g,
              b * Tq * Hq * D + r0 * Hq * D + h * D,
              Hq * D,
              vd,
              vOff,
              Hkv * D,
              0,
              dScores,
              (b * Hq + h) * Tq * Tk + r0 * Tk,
              Tk,
            );
        }
      }
      kern.softmaxBackward(probs, dScores, dScores, rows, Tk, scale);
    }
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < Hq; h++) {
        const pOff = (b * Hq + h) * Tq * Tk;
        const qOff = b * Tq * Hq * D + h * D;
        const kvOff = b * Tk * Hkv * D + Math.floor(h / group) * D;
        for (const [r0, r1, keys] of blocks) {
          const n = r1 - r0,
            rOff = r0 * Hq * D;
          // dq (rows, D) = dS (rows, keys) · k (keys, D)
          if (dq) kern.gemm(false, false, n, D, keys, 1, dScores, pOff + r0 * Tk, Tk, kd, kvOff, Hkv * D, 0, dq, qOff + rOff, Hq * D);
          // dk (keys, D) += dSᵀ (keys, rows) · q (rows, D); dv (keys, D) += Pᵀ (keys, rows) · gy (rows, D)
          if (dk) kern.gemm(true, false, keys, D, n, 1, dScores, pOff + r0 * Tk, Tk, qd, qOff + rOff, Hq * D, 1, dk, kvOff, Hkv * D);
          if (dv) kern.gemm(true, false, keys, D, n, 1, probs, pOff + r0 * Tk, Tk, g, qOff + rOff, Hq * D, 1, dv, kvOff, Hkv * D);
        }
      }
    }
    return [dq && new Tensor(dq, q.shape), dk && new Tensor(dk, k.shape), dv && new Tensor(dv, v.shape)];
  },

  crossEntropy: ({ logits, targets, lse, ignoreIndex, kept }, gy) => {
    const [n, vocab] = logits.shape;
    const ld = logits.contiguousData();
    const d = allocLike(ld, ld.length);
    kernelsFor(ld).crossEntropyBackward(ld, targets, lse, n, vocab, ignoreIndex, gy.item() / kept, d);
    return [new Tensor(d, logits.shape)];
  },

  dropout: ({ keep, scale }, gy) => {
    const g = gy.contiguousData();
    const d = allocLike(g, g.length);
    kernelsFor(g).dropoutBackward(g, keep, d, g.length, scale);
    return [new Tensor(d, gy.shape)];
  },

  // Straight-through estimator: the gradient passes as if quantisation were the identity (SQFT QA-SparsePEFT).
  fakeQuant: (_s, gy) => [gy],

  checkpoint: ({ replay }, gy, wants) => replay(gy, wants),
};

/** Writes row-major `values` into the (strided) view `t`. */
function scatterInto(t: Tensor, values: FloatArray): void {
  const nd = t.ndim;
  const idx = new Array<number>(nd).fill(0);
  for (let i = 0; i < values.length; i++) {
    let off = t.offset;
    for (let d = 0; d < nd; d++) off += idx[d] * t.strides[d];
    t.data[off] = values[i];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
}
