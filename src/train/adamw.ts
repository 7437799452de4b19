/** AdamW exactly as PyTorch's single-tensor implementation (decoupled weight decay, bias-corrected moments). */
import { kernelsFor } from '../kernels/index.ts';
import type { FloatArray } from '../kernels/api.ts';
import type { Tensor } from '../tensor/index.ts';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  step = 0;
  private moments = new Map<Tensor, { m: FloatArray; v: FloatArray }>();

  constructor(
    readonly params: Tensor[],
    opts: AdamWOptions,
  ) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    for (const p of params) {
      if (!p.isContiguous || p.offset !== 0 || p.data.length !== p.size)
        throw new Error(`AdamW: parameter ${p.name ?? ''} must own dense storage`);
      const make = () => (p.data instanceof Float64Array ? new Float64Array(p.size) : new Float32Array(p.size));
      this.moments.set(p, { m: make(), v: make() });
    }
  }

  /** One update of every parameter that has a gradient (parameters without one are skipped, as in PyTorch). */
  update(): void {
    this.step++;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    for (const p of this.params) {
      if (!p.grad) continue;
      const { m, v } = this.moments.get(p)!;
      kernelsFor(p.data).adamw(
        p.data,
        p.grad.contiguousData(),
        m,
        v,
        p.size,
        this.lr,
        this.beta1,
        this.beta2,
        this.eps,
        this.weightDecay,
        bc1,
        bc2,
      );
    }
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  /** Moment buffers for checkpoints. */
  state(): { step: number; moments: { m: FloatArray; v: FloatArray }[] } {
    return { step: this.step, moments: this.params.map((p) => this.moments.get(p)!) };
  }
}
