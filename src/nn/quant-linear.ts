/**
 * A Linear whose weight is stored group-wise quantised (GPTQ). `base` holds the dequantised float weight,
 * W = scale · (q − zero), which is exactly what the INT4 kernels compute with on the fly; training paths
 * (LoRA on a quantised base, QA-SparsePEFT) use it, inference uses the compressed kernel when available.
 */
import type { Tensor } from '../tensor/index.ts';
import type { QuantParams } from '../tensor/index.ts';
import type { QuantizedWeight } from '../io/gptq-format.ts';
import { Linear } from './modules.ts';
import type { LinearLike } from './modules.ts';

export class QuantLinear implements LinearLike {
  constructor(readonly base: Linear, readonly qw: QuantizedWeight) {
    const [out, inF] = base.weight.shape;
    if (qw.out !== out || qw.inF !== inF) throw new Error(`QuantLinear: quantised weight (${qw.out}, ${qw.inF}) does not match (${out}, ${inF})`);
  }

  get inFeatures(): number { return this.base.inFeatures; }
  get outFeatures(): number { return this.base.outFeatures; }
  get activeOut(): number { return this.base.activeOut; }
  set activeOut(v: number) { this.base.activeOut = v; }
  get activeIn(): number { return this.base.activeIn; }
  set activeIn(v: number) { this.base.activeIn = v; }

  forward(x: Tensor): Tensor {
    return this.base.forward(x);
  }

  trainable(): Tensor[] {
    return [];
  }

  baseTensors(): Tensor[] {
    return this.base.baseTensors();
  }

  /** The fixed quantiser (for QA-SparsePEFT). */
  quantParams(): QuantParams {
    return { scales: this.qw.scales, zeros: this.qw.zeros, gIdx: this.qw.gIdx, maxq: 2 ** this.qw.bits - 1, out: this.qw.out };
  }
}
