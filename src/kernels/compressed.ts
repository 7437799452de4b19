/**
 * Compressed weights for inference: formats, packers, and the TypeScript reference twins of the native
 * kernels in native/int4.cc and native/sparse.cc (contract: `CompressedKernels` in api.ts).
 *
 * Both formats describe a logical weight W (outF, inF) of a linear layer, y (M, outF) = x (M, inF) · Wᵀ.
 *
 * INT4 (GPTQ / AutoGPTQ checkpoint layout, so other GPTQ tools read what lonas writes):
 *   qweight Int32Array (inF/8, outF)   row p packs input rows 8p..8p+7 of every output column, row 8p+k in
 *                                       bits 4k..4k+3 (unsigned nibble q ∈ [0, 15])
 *   scales, zeros Float32Array (nGroups, outF)   unpacked by the loader: zeros are the TRUE zero points
 *                                       (the checkpoint's qzeros, +1 for the AutoGPTQ v1 convention, is the
 *                                       loader's business)
 *   gIdx Int32Array (inF)              group of each input row: ⌊j / groupSize⌋, or a permutation of that
 *                                       with act-order (desc_act)
 *   W[o, j] = fround(fround(q[j, o] − zeros[g, o]) · scales[g, o]),  g = gIdx[j]
 *   A weight quantised to q = z (every 0 under GPTQ's integer zero points) dequantises to exactly 0.
 *
 * Sparse ("bitmask rows", for ≥ 50% unstructured sparsity; why this and not CSR: native/sparse.cc):
 *   mask Uint32Array (outF, ⌈inF/32⌉)  bit b of word w of row o set ⇔ W[o, 32w + b] ≠ 0 (bits ≥ inF clear)
 *   values Float32Array (nnz)          the non-zeros row after row, in column order; or Uint16Array (nnz) of
 *                                       bfloat16 bits (packSparseBf16: a bf16 weight's non-zeros, kept bf16)
 *   rowPtr Int32Array (outF + 1)       row o is values[rowPtr[o] .. rowPtr[o + 1])
 *   2.125 bytes per weight at 50% sparsity (dense float32: 4); 1.125 with bf16 values (dense bf16: 2).
 *
 * The twins compute in double from the exactly dequantised / unpacked float32 weights and round once
 * when storing y; the native kernels accumulate in float32 (and the INT4 matrix-vector path factors the
 * zero point out of each group), so they agree to float32 accumulation error, not bit for bit (bounds:
 * test/kernels/compressed-int4.test.ts, compressed-sparse.test.ts). `int4Dequantize` and the sparse
 * unpacking are exact in both.
 * Non-finite x: where W[o, j] = 0 the sparse twin (and the native scalar path) skip x_j, the vector paths
 * form 0 · x_j like a dense product would, so an Inf/NaN in x may or may not reach y through a zero weight.
 *
 * Which backend: `compressedKernels(kernels())` (native when built, else these twins), or
 * `compressedKernels(kernelsFor(x))` to send Float64 x / y to the twins. Speed against dense float32 on
 * the 135M shapes: bench/compressed-kernels.ts.
 */
import type { CompressedKernels, FloatArray, Kernels } from './api.ts';
import { need } from './checks.ts';
import { roundHalfEven } from '../util/round.ts';
import type { Int4Compute } from './compute-mode.ts';
import { int4LinearInt8Act, int8ActApplies } from './int4-int8act.ts';
import { bf16Value } from './bf16-bits.ts';

export type { CompressedKernels } from './api.ts';
export { int4Compute, type Int4Compute } from './compute-mode.ts';

/** An INT4 group-quantised weight, (outF, inF) logically. */
export interface Int4Weight {
  readonly inF: number;
  readonly outF: number;
  /** GPTQ group size (the checkpoint's group_size; inF when the checkpoint says −1). */
  readonly groupSize: number;
  readonly qweight: Int32Array;
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
  readonly gIdx: Int32Array;
}

/** A sparse weight in bitmask-row form, (outF, inF) logically. */
export interface SparseWeight {
  readonly inF: number;
  readonly outF: number;
  readonly rowPtr: Int32Array;
  readonly mask: Uint32Array;
  /** float32 values, or bfloat16 bit patterns (widened exactly by the kernels) */
  readonly values: Float32Array | Uint16Array;
}

// ---------------------------------------------------------------------------------------------
// Argument checks (need: ./checks.ts)

/** Checks an INT4 weight's arrays for (inF, outF); returns nGroups = max gIdx + 1. */
function checkInt4(
  kernel: string,
  inF: number,
  outF: number,
  qweight: Int32Array,
  scales: Float32Array,
  zeros: Float32Array,
  gIdx: Int32Array,
): number {
  if (inF % 8 !== 0) {
    throw new RangeError(`${kernel}: inF = ${inF} must be a multiple of 8 (qweight packs 8 input rows per int32)`);
  }
  need(kernel, 'qweight', qweight, (inF / 8) * outF);
  need(kernel, 'gIdx', gIdx, inF);
  let maxGroup = -1;
  for (let j = 0; j < inF; j++) {
    const g = gIdx[j];
    if (g < 0) throw new RangeError(`${kernel}: gIdx[${j}] = ${g} is negative`);
    if (g > maxGroup) maxGroup = g;
  }
  const nGroups = maxGroup + 1;
  const needed = nGroups * outF;
  for (const [name, array] of [
    ['scales', scales],
    ['zeros', zeros],
  ] as const) {
    if (array.length < needed) {
      throw new RangeError(
        `${kernel}: '${name}' has ${array.length} elements but ${needed} are needed ` + `((max gIdx + 1) · outF = ${nGroups} · ${outF})`,
      );
    }
  }
  return nGroups;
}

function checkSparse(
  kernel: string,
  inF: number,
  outF: number,
  rowPtr: Int32Array,
  mask: Uint32Array,
  values: Float32Array | Uint16Array,
): void {
  need(kernel, 'rowPtr', rowPtr, outF + 1);
  need(kernel, 'mask', mask, outF * Math.ceil(inF / 32));
  if (rowPtr[0] < 0) throw new RangeError(`${kernel}: rowPtr[0] = ${rowPtr[0]} is negative`);
  for (let o = 0; o < outF; o++) {
    if (rowPtr[o + 1] < rowPtr[o]) {
      throw new RangeError(`${kernel}: rowPtr[${o + 1}] = ${rowPtr[o + 1]} < rowPtr[${o}] = ${rowPtr[o]} (must be non-decreasing)`);
    }
  }
  if (rowPtr[outF] > values.length) {
    throw new RangeError(`${kernel}: rowPtr[${outF}] = ${rowPtr[outF]} exceeds the length of 'values' (${values.length})`);
  }
}

function popcount32(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Calls visit(column, valueIndex) for row o's non-zeros; RangeError when the row's mask disagrees with rowPtr. */
function visitSparseRow(
  kernel: string,
  inF: number,
  rowPtr: Int32Array,
  mask: Uint32Array,
  o: number,
  visit: (j: number, v: number) => void,
): void {
  const words = Math.ceil(inF / 32);
  const start = rowPtr[o],
    end = rowPtr[o + 1];
  let count = 0;
  for (let w = 0; w < words; w++) {
    const rem = inF - 32 * w;
    const bits = rem < 32 ? mask[o * words + w] & ((1 << rem) - 1) : mask[o * words + w];
    count += popcount32(bits);
  }
  if (count !== end - start) {
    throw new RangeError(
      `${kernel}: row ${o}: the mask bits set below inF = ${inF} do not match ` + `rowPtr[${o + 1}] − rowPtr[${o}] = ${end - start} values`,
    );
  }
  let vi = start;
  for (let w = 0; w < words; w++) {
    let bits = mask[o * words + w];
    const rem = inF - 32 * w;
    if (rem < 32) bits &= (1 << rem) - 1;
    while (bits !== 0) {
      const b = 31 - Math.clz32(bits & -bits);
      visit(32 * w + b, vi++);
      bits &= bits - 1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// INT4 packing

/** gIdx without act-order: row j belongs to group ⌊j / groupSize⌋. */
export function groupIndex(inF: number, groupSize: number): Int32Array {
  if (!Number.isInteger(groupSize) || groupSize < 1)
    throw new RangeError(`groupIndex: groupSize = ${groupSize} must be a positive integer`);
  const g = new Int32Array(inF);
  for (let j = 0; j < inF; j++) g[j] = Math.floor(j / groupSize);
  return g;
}

/** Packs q (outF, inF), values 0..15, into GPTQ qweight (inF/8, outF). Bit-exact inverse of `unpackInt4`. */
export function packInt4(q: Uint8Array, outF: number, inF: number): Int32Array {
  if (inF % 8 !== 0) throw new RangeError(`packInt4: inF = ${inF} must be a multiple of 8 (qweight packs 8 input rows per int32)`);
  need('packInt4', 'q', q, outF * inF);
  const qweight = new Int32Array((inF / 8) * outF);
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < inF; j++) {
      const v = q[o * inF + j];
      if (v > 15) throw new RangeError(`packInt4: q[${o}, ${j}] = ${v} does not fit in 4 bits`);
      qweight[(j >> 3) * outF + o] |= v << (4 * (j & 7));
    }
  }
  return qweight;
}

/** Unpacks GPTQ qweight (inF/8, outF) into q (outF, inF), values 0..15. */
export function unpackInt4(qweight: Int32Array, inF: number, outF: number): Uint8Array {
  if (inF % 8 !== 0) throw new RangeError(`unpackInt4: inF = ${inF} must be a multiple of 8 (qweight packs 8 input rows per int32)`);
  need('unpackInt4', 'qweight', qweight, (inF / 8) * outF);
  const q = new Uint8Array(outF * inF);
  for (let p = 0; p < inF / 8; p++) {
    for (let o = 0; o < outF; o++) {
      const word = qweight[p * outF + o];
      for (let k = 0; k < 8; k++) q[o * inF + 8 * p + k] = (word >>> (4 * k)) & 15;
    }
  }
  return q;
}

/**
 * Round-to-nearest asymmetric INT4 quantisation with GPTQ's conventions (per output row and group of
 * `groupSize` inputs: range widened to include 0, scale = (max − min)/15 as float32, integer zero point
 * z = round(−min/scale), q = clamp(round(w/scale) + z, 0, 15); an all-zero group gets range [−1, 1]).
 * Zeros of w quantise to q = z and so dequantise to exactly 0. The baseline GPTQ is compared against,
 * and a quick way to make INT4 weights for tests and benchmarks.
 */
export function quantizeInt4Rtn(w: FloatArray, outF: number, inF: number, groupSize: number): Int4Weight {
  if (inF % 8 !== 0) throw new RangeError(`quantizeInt4Rtn: inF = ${inF} must be a multiple of 8`);
  need('quantizeInt4Rtn', 'w', w, outF * inF);
  const gIdx = groupIndex(inF, groupSize);
  const nGroups = Math.ceil(inF / groupSize);
  const scales = new Float32Array(nGroups * outF),
    zeros = new Float32Array(nGroups * outF);
  const q = new Uint8Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let g = 0; g < nGroups; g++) {
      const j0 = g * groupSize,
        j1 = Math.min(inF, j0 + groupSize);
      let lo = 0,
        hi = 0;
      for (let j = j0; j < j1; j++) {
        const v = w[o * inF + j];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (lo === 0 && hi === 0) {
        lo = -1;
        hi = 1;
      }
      // float32 arithmetic and round-half-to-even, like torch
      const s = Math.fround(Math.fround(hi - lo) / 15);
      const z = Math.min(15, Math.max(0, roundHalfEven(Math.fround(-lo / s))));
      scales[g * outF + o] = s;
      zeros[g * outF + o] = z;
      for (let j = j0; j < j1; j++) {
        q[o * inF + j] = Math.min(15, Math.max(0, roundHalfEven(Math.fround(w[o * inF + j] / s)) + z));
      }
    }
  }
  return { inF, outF, groupSize, qweight: packInt4(q, outF, inF), scales, zeros, gIdx };
}

/**
 * Reorders an act-order weight's input rows by group (stable), so its gIdx becomes ⌊j / groupSize⌋ and
 * the native kernel takes its fast path (when every group has groupSize rows, as GPTQ's act-order
 * produces). Returns the reordered weight and `perm`: W x = W' x' with x'[j'] = x[perm[j']]
 * (see `gatherColumns`). Done once at load time.
 */
export function int4GroupOrder(w: Int4Weight): { weight: Int4Weight; perm: Int32Array } {
  const { inF, outF } = w;
  checkInt4('int4GroupOrder', inF, outF, w.qweight, w.scales, w.zeros, w.gIdx);
  const perm = Int32Array.from({ length: inF }, (_, j) => j);
  perm.sort((a, b) => w.gIdx[a] - w.gIdx[b] || a - b);
  const q = unpackInt4(w.qweight, inF, outF);
  const q2 = new Uint8Array(outF * inF);
  const gIdx = new Int32Array(inF);
  for (let j2 = 0; j2 < inF; j2++) {
    const j = perm[j2];
    gIdx[j2] = w.gIdx[j];
    for (let o = 0; o < outF; o++) q2[o * inF + j2] = q[o * inF + j];
  }
  return { weight: { ...w, qweight: packInt4(q2, outF, inF), gIdx }, perm };
}

/** out (M, perm.length) = x[:, perm] for x (M, inF). */
export function gatherColumns(x: FloatArray, M: number, inF: number, perm: Int32Array, out: FloatArray): void {
  const n = perm.length;
  need('gatherColumns', 'x', x, M * inF);
  need('gatherColumns', 'out', out, M * n);
  for (let m = 0; m < M; m++) for (let j = 0; j < n; j++) out[m * n + j] = x[m * inF + perm[j]];
}

// ---------------------------------------------------------------------------------------------
// INT4 reference twins

/** The exact dequantised weight, (outF, inF) float32. */
function dequantizeF32(
  kernel: string,
  qweight: Int32Array,
  scales: Float32Array,
  zeros: Float32Array,
  gIdx: Int32Array,
  inF: number,
  outF: number,
): Float32Array {
  checkInt4(kernel, inF, outF, qweight, scales, zeros, gIdx);
  const w = new Float32Array(outF * inF);
  for (let p = 0; p < inF / 8; p++) {
    for (let o = 0; o < outF; o++) {
      const word = qweight[p * outF + o];
      for (let k = 0; k < 8; k++) {
        const j = 8 * p + k,
          g = gIdx[j];
        const q = (word >>> (4 * k)) & 15;
        w[o * inF + j] = Math.fround(Math.fround(q - zeros[g * outF + o]) * scales[g * outF + o]);
      }
    }
  }
  return w;
}

function int4Dequantize(
  qweight: Int32Array,
  scales: Float32Array,
  zeros: Float32Array,
  gIdx: Int32Array,
  inF: number,
  outF: number,
  out: FloatArray,
): void {
  const w = dequantizeF32('int4Dequantize', qweight, scales, zeros, gIdx, inF, outF);
  need('int4Dequantize', 'out', out, inF * outF);
  out.set(w);
}

function int4Linear(
  x: FloatArray,
  M: number,
  inF: number,
  outF: number,
  qweight: Int32Array,
  scales: Float32Array,
  zeros: Float32Array,
  gIdx: Int32Array,
  groupSize: number,
  y: FloatArray,
  compute: Int4Compute = 'exact',
): void {
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new RangeError(`int4Linear: groupSize = ${groupSize} must be ≥ 1`);
  if (compute !== 'exact' && compute !== 'int8-act')
    throw new RangeError(`int4Linear: compute = '${compute}' must be 'exact' or 'int8-act'`);
  const w = dequantizeF32('int4Linear', qweight, scales, zeros, gIdx, inF, outF);
  need('int4Linear', 'x', x, M * inF);
  need('int4Linear', 'y', y, M * outF);
  if (compute === 'int8-act' && int8ActApplies(inF, gIdx, groupSize)) {
    int4LinearInt8Act(x, M, inF, outF, qweight, scales, zeros, groupSize, y);
  } else denseProduct(x, M, inF, outF, w, y);
}

/** y (M, outF) = x (M, inF) · wᵀ, sums in double. */
function denseProduct(x: FloatArray, M: number, inF: number, outF: number, w: Float32Array, y: FloatArray): void {
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < outF; o++) {
      let sum = 0;
      for (let j = 0; j < inF; j++) sum += x[m * inF + j] * w[o * inF + j];
      y[m * outF + o] = sum;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sparse packing and reference twin

/**
 * Packs dense w (outF, inF) into bitmask rows. Exact: unpackSparse(packSparse(w)) equals w element for
 * element, except that −0 (a zero) comes back as +0. NaN counts as non-zero.
 */
export function packSparse(w: FloatArray, outF: number, inF: number): SparseWeight {
  return packNonZeros('packSparse', w, outF, inF, false);
}

/**
 * Packs a bfloat16 weight (outF, inF), given as its bit patterns, into bitmask rows with bf16 values: no
 * widening, 2 bytes per non-zero. ±0 (bits & 0x7fff = 0) are the zeros; NaN counts as non-zero. The kernels
 * widen each value exactly, so the result is that of packSparse on the float32 upcast, bit for bit.
 */
export function packSparseBf16(bits: Uint16Array, outF: number, inF: number): SparseWeight {
  return packNonZeros('packSparseBf16', bits, outF, inF, true);
}

function packNonZeros(kernel: string, w: FloatArray | Uint16Array, outF: number, inF: number, bf16: boolean): SparseWeight {
  need(kernel, bf16 ? 'bits' : 'w', w, outF * inF);
  const nonZero = bf16 ? (v: number) => (v & 0x7fff) !== 0 : (v: number) => v !== 0;
  const words = Math.ceil(inF / 32);
  const mask = new Uint32Array(outF * words);
  const rowPtr = new Int32Array(outF + 1);
  let nnz = 0;
  for (let i = 0; i < outF * inF; i++) if (nonZero(w[i])) nnz++;
  if (nnz > 0x7fffffff) throw new RangeError(`${kernel}: ${nnz} non-zeros exceed the Int32 row offsets`);
  const values = bf16 ? new Uint16Array(nnz) : new Float32Array(nnz);
  let n = 0;
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < inF; j++) {
      const v = w[o * inF + j];
      if (nonZero(v)) {
        mask[o * words + (j >> 5)] |= 1 << (j & 31);
        values[n++] = v;
      }
    }
    rowPtr[o + 1] = n;
  }
  return { inF, outF, rowPtr, mask, values };
}

/** Value vi of a sparse weight's values as a number (bf16 bits widened exactly). */
function valueAt(values: Float32Array | Uint16Array, vi: number): number {
  return values instanceof Uint16Array ? bf16Value(values[vi]) : values[vi];
}

/** Dense w (outF, inF) of a bitmask-row weight (RangeError if the mask and rowPtr disagree). */
export function unpackSparse(sp: SparseWeight): Float32Array {
  const { inF, outF, rowPtr, mask, values } = sp;
  checkSparse('unpackSparse', inF, outF, rowPtr, mask, values);
  const w = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    visitSparseRow('unpackSparse', inF, rowPtr, mask, o, (j, vi) => {
      w[o * inF + j] = valueAt(values, vi);
    });
  }
  return w;
}

/** Bytes the sparse format occupies (mask + values + rowPtr); dense float32 is 4 · outF · inF. */
export function sparseBytes(sp: SparseWeight): number {
  return 4 * (sp.mask.length + sp.rowPtr.length) + sp.values.byteLength;
}

function sparseLinear(
  x: FloatArray,
  M: number,
  inF: number,
  outF: number,
  rowPtr: Int32Array,
  mask: Uint32Array,
  values: Float32Array | Uint16Array,
  y: FloatArray,
): void {
  checkSparse('sparseLinear', inF, outF, rowPtr, mask, values);
  need('sparseLinear', 'x', x, M * inF);
  need('sparseLinear', 'y', y, M * outF);
  const sums = new Float64Array(M);
  for (let o = 0; o < outF; o++) {
    sums.fill(0);
    visitSparseRow('sparseLinear', inF, rowPtr, mask, o, (j, vi) => {
      const v = valueAt(values, vi);
      for (let m = 0; m < M; m++) sums[m] += v * x[m * inF + j];
    });
    for (let m = 0; m < M; m++) y[m * outF + o] = sums[m];
  }
}

// ---------------------------------------------------------------------------------------------
// Backends

/** The TypeScript twins (any FloatArray for x / y / out; the oracle in tests). */
export const compressedReference: CompressedKernels = { int4Linear, int4Dequantize, sparseLinear };

/**
 * The compressed kernels of `k` where it has them (native), else the twins. Float64 x/y need the twins:
 * pass `referenceKernels` (or use `kernelsFor(x)` from index.ts) for those.
 */
export function compressedKernels(k: Kernels): CompressedKernels {
  return {
    int4Linear: k.int4Linear ?? int4Linear,
    int4Dequantize: k.int4Dequantize ?? int4Dequantize,
    sparseLinear: k.sparseLinear ?? sparseLinear,
  };
}

/** y (M, outF) = x (M, inF) · Wᵀ for an INT4 weight object, in the given compute mode. */
export function int4Apply(
  k: CompressedKernels,
  x: FloatArray,
  M: number,
  w: Int4Weight,
  y: FloatArray,
  compute: Int4Compute = 'exact',
): void {
  k.int4Linear(x, M, w.inF, w.outF, w.qweight, w.scales, w.zeros, w.gIdx, w.groupSize, y, compute);
}

/** y (M, outF) = x (M, inF) · Wᵀ for a sparse weight object. */
export function sparseApply(k: CompressedKernels, x: FloatArray, M: number, w: SparseWeight, y: FloatArray): void {
  k.sparseLinear(x, M, w.inF, w.outF, w.rowPtr, w.mask, w.values, y);
}
