/**
 * Elastic widths (spec.md §2): a projection of the super-network computes only its first o' outputs from its
 * first i' inputs,
 *   y = x W[:o', :i']ᵀ + b[:o']
 * with strided views (no copies; bf16 bits are sliced by their kernel). The active sizes are super-network
 * state, kept here beside the plain layers of src/nn: LoraLinear holds its own, and ElasticLinear gives them
 * to a projection without an adapter (a float, bf16 or sparse Linear, or a GPTQ QuantLinear through its
 * dequantised weight). At full size both run the stored module's own forward (its sparse or INT4 kernel).
 */
import { linear, linearBf16, narrow } from '../tensor/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { type Linear, rowsOf } from '../nn/modules.ts';
import type { LinearLike } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';

/**
 * x (…, i') → (…, o'): the first o' rows and i' columns of `base`'s weight (and o' entries of its bias); at
 * full size the stored module's own forward, `whole.forward(x)` (its sparse or INT4 kernel).
 */
export function elasticForward(whole: LinearLike, base: Linear, x: Tensor, o: number, i: number): Tensor {
  const [out, inF] = base.weightShape;
  if (o === out && i === inF) return whole.forward(x);
  const bias = base.bias && o !== out ? narrow(base.bias, 0, 0, o) : base.bias;
  const bits = base.weightStore.computeBits(rowsOf(x));
  if (bits) return linearBf16(x, bits, o, i, bias);
  return linear(x, narrow(narrow(base.weight, 0, 0, o), 1, 0, i), bias);
}

/** A projection without an adapter, given elastic widths (both default to the full size). */
export class ElasticLinear implements LinearLike {
  activeOut: number;
  activeIn: number;

  /** `stored`: the module as loaded; it may be swapped for an equivalent inference form of the same weight. */
  constructor(public stored: Linear | QuantLinear) {
    [this.activeOut, this.activeIn] = this.base.weightShape;
  }

  /** The float (or bf16, or sparse) weight that sliced widths read. */
  get base(): Linear {
    return this.stored instanceof QuantLinear ? this.stored.base : this.stored;
  }

  get inFeatures(): number {
    return this.activeIn;
  }

  get outFeatures(): number {
    return this.activeOut;
  }

  /** Restores the full (stored) sizes. */
  resetActive(): void {
    [this.activeOut, this.activeIn] = this.base.weightShape;
  }

  /** x (…, activeIn) → (…, activeOut) */
  forward(x: Tensor): Tensor {
    return elasticForward(this.stored, this.base, x, this.activeOut, this.activeIn);
  }

  trainable(): Tensor[] {
    return this.stored.trainable();
  }

  baseTensors(): Tensor[] {
    return this.stored.baseTensors();
  }
}
