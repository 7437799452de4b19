/**
 * A Linear whose weight is stored group-wise quantised (GPTQ). `base` holds the dequantised float weight,
 * W = scale · (q − zero), which is exactly what the INT4 kernels compute with on the fly; training paths
 * (LoRA on a quantised base, QA-SparsePEFT) use it, inference uses the compressed kernel when available.
 */
import { Tensor, needsGrad } from '../tensor/index.ts';
import { kernels, noteWeightKernel } from '../kernels/index.ts';
import { scratchF32 } from '../tensor/scratch.ts';
import { compressedKernels, int4Compute, packInt4 } from '../kernels/compressed.ts';
import type { QuantizedWeight } from './quantized-weight.ts';
import type { Linear } from './modules.ts';
import type { LinearLike } from './modules.ts';

export class QuantLinear implements LinearLike {
  constructor(
    readonly base: Linear,
    readonly qw: QuantizedWeight,
  ) {
    const [out, inF] = base.weight.shape;
    if (qw.out !== out || qw.inF !== inF)
      throw new Error(`QuantLinear: quantised weight (${qw.out}, ${qw.inF}) does not match (${out}, ${inF})`);
  }

  get inFeatures(): number {
    return this.base.inFeatures;
  }
  get outFeatures(): number {
    return this.base.outFeatures;
  }

  /**
   * Inference (no gradient to record) runs the INT4 kernel on the packed weights, reading 1/8 of the float
   * bytes; anything else (training through the base; sliced widths, src/adapters/elastic.ts) uses the
   * dequantised float weight — the same values, W = scale · (q − zero). The INT4 kernel runs in the process's
   * compute mode (int4Compute(): LONAS_INT4_COMPUTE, default exact).
   */
  forward(x: Tensor): Tensor {
    const [out, inF] = this.base.weight.shape;
    if (needsGrad(x, this.base.weight) || !(x.data instanceof Float32Array)) return this.base.forward(x);
    const packed = this.packedInt4();
    if (!packed) return this.base.forward(x);
    const xd = x.contiguousData();
    const M = xd.length / inF;
    const y = scratchF32(M * out); // (M, out)
    noteWeightKernel('int4');
    compressedKernels(kernels()).int4Linear(
      xd,
      M,
      inF,
      out,
      packed,
      this.qw.scales,
      this.qw.zeros,
      this.qw.gIdx,
      this.qw.groupSize,
      y,
      int4Compute(),
    );
    const b = this.base.bias?.data;
    if (b) for (let r = 0; r < M; r++) for (let o = 0; o < out; o++) y[r * out + o] += b[o];
    return new Tensor(y, [...x.shape.slice(0, -1), out]);
  }

  private packed: Int32Array | null | undefined;

  /** The 4-bit codes in the kernel's layout (built once), or null when the kernel cannot take this weight. */
  private packedInt4(): Int32Array | null {
    if (this.packed === undefined)
      this.packed = this.qw.bits === 4 && this.qw.inF % 8 === 0 ? packInt4(this.qw.q, this.qw.out, this.qw.inF) : null;
    return this.packed;
  }

  trainable(): Tensor[] {
    return [];
  }

  baseTensors(): Tensor[] {
    return this.base.baseTensors();
  }
}
