/**
 * Differentiable operations (forward passes). Each computes its output with the kernels and records
 * what its backward rule (in vjp.ts) needs. Shapes are checked here, with errors that name the op.
 */
import { kernelsFor, noteWeightKernel } from '../kernels/index.ts';
import { record } from './autograd.ts';
import type { BitMask } from './bitmask.ts';
import type { Rng } from './rng.ts';
import { roundHalfEven } from '../util/round.ts';
import { Tensor, fmtShape, matrixOperand, numel, sameShape, allocLike, allocOut } from './tensor.ts';

function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) throw new Error(`${op}: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtypes ${a.dtype} and ${b.dtype} differ`);
}

// ---- elementwise ------------------------------------------------------------------------------------

export function add(a: Tensor, b: Tensor): Tensor {
  checkSameShape('add', a, b);
  const x = a.contiguousData(),
    y = b.contiguousData();
  const out = allocOut(a, x.length);
  kernelsFor(x).addScaled(x, y, out, out.length, 1);
  return record('add', [a, b], {}, new Tensor(out, a.shape));
}

export function sub(a: Tensor, b: Tensor): Tensor {
  checkSameShape('sub', a, b);
  const x = a.contiguousData(),
    y = b.contiguousData();
  const out = allocOut(a, x.length);
  for (let i = 0; i < out.length; i++) out[i] = x[i] - y[i];
  return record('sub', [a, b], {}, new Tensor(out, a.shape));
}

export function mul(a: Tensor, b: Tensor): Tensor {
  checkSameShape('mul', a, b);
  const x = a.contiguousData(),
    y = b.contiguousData();
  const out = allocOut(a, x.length);
  for (let i = 0; i < out.length; i++) out[i] = x[i] * y[i];
  return record('mul', [a, b], { a, b }, new Tensor(out, a.shape));
}

/** a (rows, cols) ⊙ M[:rows, :cols], M a constant bit mask (rows' ≥ rows, ld ≥ cols) stored row-major with row length ld. */
export function maskMul(a: Tensor, mask: BitMask, ld: number): Tensor {
  if (a.shape.length !== 2 || a.shape[1] > ld || a.shape[0] * ld > mask.length)
    throw new Error(`maskMul: a [${a.shape}] does not fit a mask of ${mask.length} entries with rows of ${ld}`);
  const [rows, cols] = a.shape;
  const x = a.contiguousData();
  const out = allocOut(a, x.length);
  for (let r = 0; r < rows; r++) for (let c = 0, k = r * cols, m = r * ld; c < cols; c++) out[k + c] = x[k + c] * mask.get(m + c);
  return record('maskMul', [a], { mask, ld, rows, cols }, new Tensor(out, a.shape));
}

export function scale(a: Tensor, s: number): Tensor {
  const x = a.contiguousData();
  const out = allocOut(a, x.length);
  kernelsFor(x).addScaled(null, x, out, out.length, s);
  return record('scale', [a], { s }, new Tensor(out, a.shape));
}

/** Σ of all elements (scalar, shape []). */
export function sum(a: Tensor): Tensor {
  return reduceAll(a, 1);
}

/** Mean of all elements (scalar, shape []). */
export function mean(a: Tensor): Tensor {
  return reduceAll(a, 1 / a.size);
}

function reduceAll(a: Tensor, factor: number): Tensor {
  const x = a.contiguousData();
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i];
  const out = allocLike(a, 1);
  out[0] = acc * factor;
  return record('sum', [a], { shape: a.shape, factor }, new Tensor(out, []));
}

/** Inverted dropout: keeps each element with probability 1 − p and scales it by 1/(1 − p). Identity when p = 0. */
export function dropout(x: Tensor, p: number, rng: Rng | Rng[]): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: probability must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const src = x.contiguousData();
  // one stream per row: x's elements split into rngs.length equal consecutive blocks (the rows of a (B, T, …)
  // tensor), block b drawn from rngs[b]; a row's mask then does not depend on which rows share its batch
  const rngs = Array.isArray(rng) ? rng : [rng];
  if (src.length % rngs.length !== 0) throw new Error(`dropout: ${src.length} elements do not split into ${rngs.length} rows`);
  const keep = new Uint8Array(src.length); // 1 = kept
  const out = allocOut(x, src.length);
  const scale = 1 / (1 - p);
  // one 32-bit draw per element: kept when it is ≥ p·2³² (probability 1 − p up to 2⁻³²)
  const threshold = Math.floor(p * 4294967296);
  const states = new Uint32Array(4 * rngs.length);
  rngs.forEach((r, b) => r.writeWords(states, 4 * b));
  kernelsFor(src).dropout(src, out, keep, src.length, states, rngs.length, threshold, scale);
  rngs.forEach((r, b) => r.readWords(states, 4 * b));
  return record('dropout', [x], { keep, scale }, new Tensor(out, x.shape));
}

// ---- views ------------------------------------------------------------------------------------------

/** Same elements, new shape (a view when contiguous, else a copy). One dimension may be -1. */
export function reshape(a: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const resolved = shape.includes(-1) ? shape.map((d) => (d === -1 ? a.size / numel(known) : d)) : [...shape];
  if (numel(resolved) !== a.size || resolved.some((d) => !Number.isInteger(d))) {
    throw new Error(`reshape: cannot view ${fmtShape(a.shape)} (${a.size} elements) as ${fmtShape(shape)}`);
  }
  const src = a.isContiguous ? a : contiguous(a);
  const out = new Tensor(src.data, resolved, { offset: src.offset });
  return record('reshape', [src], { shape: src.shape }, out);
}

/** View of `a[start : start + length]` along `dim` (shares storage). */
export function narrow(a: Tensor, dim: number, start: number, length: number): Tensor {
  if (dim < 0) dim += a.ndim;
  if (dim < 0 || dim >= a.ndim || start < 0 || length < 0 || start + length > a.shape[dim]) {
    throw new Error(`narrow: [${start}, ${start + length}) along dim ${dim} is outside ${fmtShape(a.shape)}`);
  }
  const shape = [...a.shape];
  shape[dim] = length;
  const out = new Tensor(a.data, shape, { strides: a.strides, offset: a.offset + start * a.strides[dim] });
  return record('narrow', [a], { shape: a.shape, dim, start }, out);
}

/** View with axes reordered: out.shape[i] = a.shape[dims[i]]. */
export function permute(a: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== a.ndim || [...dims].sort((x, y) => x - y).some((d, i) => d !== i)) {
    throw new Error(`permute: ${fmtShape(dims)} is not a permutation of ${a.ndim} axes`);
  }
  const out = new Tensor(
    a.data,
    dims.map((d) => a.shape[d]),
    { strides: dims.map((d) => a.strides[d]), offset: a.offset },
  );
  return record('permute', [a], { dims }, out);
}

/** A dense row-major copy (returns `a` itself when already contiguous). */
export function contiguous(a: Tensor): Tensor {
  if (a.isContiguous) return a;
  const data = a.contiguousData();
  return record('contiguous', [a], {}, new Tensor(data, a.shape));
}

// ---- linear algebra ---------------------------------------------------------------------------------

/**
 * y = x · wᵀ (+ b). x (…, in); w (out, in), any 2-D view with a unit stride (row/column slices of a larger
 * weight are multiplied in place); b (out). y (…, out).
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  const inF = x.shape[x.ndim - 1];
  if (w.ndim !== 2 || w.shape[1] !== inF) {
    throw new Error(
      `linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(w.shape)}${w.name ? ` (${w.name})` : ''} (expected (out, ${inF}))`,
    );
  }
  const outF = w.shape[0];
  if (b && (b.ndim !== 1 || b.shape[0] !== outF)) throw new Error(`linear: bias ${fmtShape(b.shape)} does not match ${outF} outputs`);
  const xd = x.contiguousData();
  const rows = xd.length / Math.max(inF, 1);
  const y = inF > 0 ? allocOut(x, rows * outF) : allocLike(x, rows * outF); // gemm (β 0 or after the bias) writes every element
  const wo = matrixOperand(w);
  if (b) {
    const bd = b.contiguousData();
    for (let r = 0; r < rows; r++) y.set(bd, r * outF);
  }
  noteWeightKernel('f32');
  if (rows > 0 && outF > 0 && inF > 0) {
    kernelsFor(xd).gemm(false, !wo.trans, rows, outF, inF, 1, xd, 0, Math.max(inF, 1), wo.data, wo.off, wo.ld, b ? 1 : 0, y, 0, outF);
  }
  const out = new Tensor(y, [...x.shape.slice(0, -1), outF]);
  // x is needed only for the weight's gradient: a frozen weight's product keeps no activation
  const xc = !w.requiresGrad ? null : x.isContiguous ? x : new Tensor(xd, x.shape);
  return record('linear', b ? [x, w, b] : [x, w], { x: xc, xShape: x.shape, w, hasBias: !!b }, out);
}

/** Batched matrix product of contiguous tensors: (…, m, k) · (…, k, n) → (…, m, n) with equal batch dims. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (
    a.ndim < 2 ||
    a.ndim !== b.ndim ||
    !sameShape(a.shape.slice(0, -2), b.shape.slice(0, -2)) ||
    a.shape[a.ndim - 1] !== b.shape[b.ndim - 2]
  ) {
    throw new Error(`matmul: cannot multiply ${fmtShape(a.shape)} by ${fmtShape(b.shape)}`);
  }
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.ndim - 1];
  const batch = numel(a.shape.slice(0, -2));
  const ad = a.contiguousData(),
    bd = b.contiguousData();
  const y = k > 0 ? allocOut(a, batch * m * n) : allocLike(a, batch * m * n); // gemm β 0 writes every element
  kernelsFor(ad).gemmBatched(false, false, m, n, k, 1, ad, 0, k, m * k, bd, 0, n, k * n, 0, y, 0, n, m * n, batch);
  const ac = a.isContiguous ? a : new Tensor(ad, a.shape);
  const bc = b.isContiguous ? b : new Tensor(bd, b.shape);
  return record('matmul', [a, b], { a: ac, b: bc }, new Tensor(y, [...a.shape.slice(0, -1), n]));
}

/** Group-wise asymmetric quantiser parameters of an (out, in) weight: scales/zeros (groups, out), group of each input. */
export interface QuantParams {
  /** (groups, out) */
  scales: Float32Array;
  /** (groups, out), integer-valued */
  zeros: Float32Array;
  /** (in) group of each input column */
  gIdx: Int32Array;
  /** 2^bits − 1 */
  maxq: number;
  /** the full output width the scales/zeros rows are laid out for */
  out: number;
}

/** re-exported for the tensor API (src/tensor/index.ts); defined in src/util/round.ts */
export { roundHalfEven };

/**
 * y = S (clamp(round(w / S + Z), 0, maxq) − Z) per element (o, j) with S, Z of group gIdx[j] and output o; the
 * backward pass is the identity (straight-through estimator). w (out, in), possibly a slice: `colOffset`-free,
 * the first `in` columns of the quantiser are used.
 */
export function fakeQuant(w: Tensor, q: QuantParams): Tensor {
  if (w.ndim !== 2) throw new Error(`fakeQuant: weight must be 2-D, got ${fmtShape(w.shape)}`);
  const [out, inF] = w.shape;
  const src = w.contiguousData();
  const y = allocLike(w, src.length);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < inF; j++) {
      const g = q.gIdx[j] * q.out + o;
      const s = q.scales[g],
        z = q.zeros[g];
      const code = Math.min(q.maxq, Math.max(0, roundHalfEven(src[o * inF + j] / s) + z));
      y[o * inF + j] = s * (code - z);
    }
  }
  return record('fakeQuant', [w], {}, new Tensor(y, w.shape));
}
