/**
 * A Linear whose weight is mostly zeros (≥ 50%, e.g. after Wanda): for inference at full size it multiplies
 * with the bitmask-sparse kernel (packed once: 1 bit per weight + the non-zero values), reading about half
 * the bytes of the dense weight at 50% sparsity (a bf16 weight's non-zeros stay bf16). The dense weight is kept (in bfloat16 when stored so): training, sliced widths
 * (src/adapters/elastic.ts) and anything that needs a gradient use it. The packed copy is a snapshot, so `useSparseKernels` is applied
 * only to models that are not modified afterwards (inference).
 */
import { Tensor, needsGrad } from '../tensor/index.ts';
import { kernels, noteWeightKernel } from '../kernels/index.ts';
import { scratchF32 } from '../tensor/scratch.ts';
import { compressedKernels, packSparse, packSparseBf16, sparseBytes } from '../kernels/compressed.ts';
import type { SparseWeight } from '../kernels/compressed.ts';
import { Linear } from './modules.ts';

export const SPARSE_KERNEL_MIN_SPARSITY = 0.5;

export class SparseLinear extends Linear {
  private readonly packed: SparseWeight;

  /**
   * Shares `from`'s weight storage. A bf16 weight stays bf16, and so do the packed copy's values (1.125 bytes per
   * weight at 50%, against 2 for the dense bf16 weight; float32 values would make it 2.125, more than dense).
   */
  constructor(from: Linear) {
    super(from.weightStore, from.bias);
    const [out, inF] = from.weightShape;
    const bf16 = from.weightStore.bf16;
    this.packed = bf16 ? packSparseBf16(bf16.bits, out, inF) : packSparse(from.weight.data, out, inF);
  }

  /** Bytes the sparse kernel reads per call (mask, values, row offsets). */
  get packedBytes(): number {
    return sparseBytes(this.packed);
  }

  override forward(x: Tensor): Tensor {
    const [out, inF] = this.weightShape;
    const w = this.weightStore.bf16 ? null : this.weight; // a bf16 weight is frozen (and not widened here)
    if (needsGrad(x, w) || !(x.data instanceof Float32Array)) return super.forward(x);
    const xd = x.contiguousData();
    const M = xd.length / inF;
    const y = scratchF32(M * out); // (M, out)
    noteWeightKernel('sparse');
    compressedKernels(kernels()).sparseLinear(xd, M, inF, out, this.packed.rowPtr, this.packed.mask, this.packed.values, y);
    const b = this.bias?.data;
    if (b) for (let r = 0; r < M; r++) for (let o = 0; o < out; o++) y[r * out + o] += b[o];
    return new Tensor(y, [...x.shape.slice(0, -1), out]);
  }
}

/** Fraction of exact zeros in a weight. */
export function sparsity(w: Tensor): number {
  let z = 0;
  for (let i = 0; i < w.data.length; i++) if (w.data[i] === 0) z++;
  return z / w.data.length;
}

/**
 * Fraction of exact zeros in a Linear's stored weight. A weight kept in bfloat16 is counted from its bits
 * (±0 is bits & 0x7fff = 0): reading `m.weight` would widen it to float32 for good (see WeightStore), and
 * loading a BF16 checkpoint for inference must not do that just to find out it is dense.
 */
export function weightSparsity(m: Linear): number {
  const w = m.weightStore.bf16;
  if (!w) return sparsity(m.weight);
  let z = 0;
  for (let i = 0; i < w.bits.length; i++) if ((w.bits[i] & 0x7fff) === 0) z++;
  return z / w.bits.length;
}
