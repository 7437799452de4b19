/**
 * Building blocks with parameters. A model holds `LinearLike` modules, so adapters (LoRA, elastic
 * widths) can wrap a base Linear without the model code knowing.
 */
import { Rng, Tensor, embedding, linear, narrow, rmsnorm, tensor } from '../tensor/index.ts';

export interface LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** elastic widths: only the first activeOut outputs / activeIn inputs are used (≤ the stored sizes) */
  activeOut: number;
  activeIn: number;
  /** x (…, in) → (…, out) */
  forward(x: Tensor): Tensor;
  /** The trainable tensors of this module (frozen base weights are not included). */
  trainable(): Tensor[];
  /** The base layer's weight and bias (what a model checkpoint stores), adapters excluded. */
  baseTensors(): Tensor[];
}

/**
 * y = x Wᵀ + b. Elastic widths: only the first `activeOut` rows and `activeIn` columns of W are used
 * (strided views, no copies); both default to the full size.
 */
export class Linear implements LinearLike {
  activeOut: number;
  activeIn: number;

  constructor(public weight: Tensor, public bias: Tensor | null = null) {
    if (weight.ndim !== 2) throw new Error(`Linear: weight ${weight.name ?? ''} must be 2-D (out, in), got [${weight.shape.join(', ')}]`);
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
      throw new Error(`Linear: bias ${bias.name ?? ''} of shape [${bias.shape.join(', ')}] does not match ${weight.shape[0]} outputs`);
    }
    [this.activeOut, this.activeIn] = weight.shape;
  }

  get inFeatures(): number {
    return this.activeIn;
  }

  get outFeatures(): number {
    return this.activeOut;
  }

  forward(x: Tensor): Tensor {
    const [out, inF] = this.weight.shape;
    const o = this.activeOut, i = this.activeIn;
    if (o === out && i === inF) return linear(x, this.weight, this.bias);
    const bias = this.bias ? narrow(this.bias, 0, 0, o) : null;
    return linear(x, narrow(narrow(this.weight, 0, 0, o), 1, 0, i), bias);
  }

  trainable(): Tensor[] {
    return [this.weight, this.bias].filter((t): t is Tensor => t !== null && t.requiresGrad);
  }

  baseTensors(): Tensor[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
}

export class RMSNorm {
  constructor(public weight: Tensor, public eps: number) {}

  forward(x: Tensor): Tensor {
    return rmsnorm(x, this.weight, this.eps);
  }
}

export class Embedding {
  constructor(public weight: Tensor) {}

  /** ids (…) → (…, dim) */
  forward(ids: Int32Array, shape: readonly number[]): Tensor {
    return embedding(this.weight, ids, shape);
  }
}

/** Normal(0, std) initialised tensor (seeded). */
export function randomNormal(rng: Rng, shape: number[], std: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal() * std;
  return tensor(v, shape);
}
