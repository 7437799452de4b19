/**
 * Building blocks with parameters. A model holds `LinearLike` modules, so adapters (LoRA, elastic
 * widths) can wrap a base Linear without the model code knowing.
 */
import { Rng, Tensor, embedding, linear, rmsnorm, tensor } from '../tensor/index.ts';

export interface LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** x (…, in) → (…, out) */
  forward(x: Tensor): Tensor;
  /** The trainable tensors of this module (frozen base weights are not included). */
  trainable(): Tensor[];
}

export class Linear implements LinearLike {
  constructor(public weight: Tensor, public bias: Tensor | null = null) {
    if (weight.ndim !== 2) throw new Error(`Linear: weight ${weight.name ?? ''} must be 2-D (out, in), got [${weight.shape.join(', ')}]`);
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
      throw new Error(`Linear: bias ${bias.name ?? ''} of shape [${bias.shape.join(', ')}] does not match ${weight.shape[0]} outputs`);
    }
  }

  get inFeatures(): number {
    return this.weight.shape[1];
  }

  get outFeatures(): number {
    return this.weight.shape[0];
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  trainable(): Tensor[] {
    return [this.weight, this.bias].filter((t): t is Tensor => t !== null && t.requiresGrad);
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
