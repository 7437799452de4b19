/**
 * LoRA wrapping a frozen base Linear, with elastic rank and elastic input/output widths.
 *
 *   y = W[:o', :i'] x + s · B[:o', :r'] (A[:r', :i'] dropout(x)),   s = alpha / r_max
 *
 * A: (r_max, in), Kaiming-uniform (as PEFT: kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in)); B: (out, r_max),
 * zero, so an untrained adapter changes nothing. The active sizes (r', o', i') are plain fields set
 * explicitly by a sub-network configuration; slices are strided views multiplied in place (no copies;
 * src/adapters/elastic.ts).
 * The scaling stays alpha / r_max whatever r' is, as the reference implementation does.
 *
 * How the low-rank update acts on the base is the adapter's `variant` (a strategy object): plain LoRA (this
 * file), SparsePEFT or QA-SparsePEFT (src/adapters/sqft.ts). `wrapWithLora` attaches an adapter to any base
 * form lonas loads: a float or bf16 Linear, a SparseLinear (its dense weight), a GPTQ QuantLinear (its
 * dequantised weight, the GPTQ weight kept as `baseQuant`).
 */
import { type Rng, type Tensor, add, dropout, linear, narrow, scale, tensor } from '../tensor/index.ts';
import type { QuantizedWeight } from '../nn/quantized-weight.ts';
import { Linear } from '../nn/modules.ts';
import type { LinearLike } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import { kernels } from '../kernels/index.ts';
import { elasticForward } from './elastic.ts';

export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
}

export type AdapterMode = 'lora' | 'sparse' | 'qa';

/** How an adapter's update s · B A acts on its base: the layer's forward, and the mask of its merged delta. */
export interface LoraVariant {
  /** lora: plain; sparse: SparsePEFT (delta masked by the base's zeros); qa: QA-SparsePEFT (INT4-aware) */
  readonly mode: AdapterMode;
  /** x (…, i') → (…, o') at the layer's active sizes */
  forward(l: LoraLinear, x: Tensor): Tensor;
  /** Applies the variant's mask in place to a dense active delta (o', i') (merging and extraction). */
  maskDelta(l: LoraLinear, delta: Float32Array): void;
}

/** Plain LoRA: y = W x + s · B (A dropout(x)), the adapter path skipped at rank 0. */
export const PLAIN_LORA: LoraVariant = {
  mode: 'lora',
  forward(l, x) {
    if (l.activeRank === 0) return l.baseForward(x);
    const a = l.activeA(),
      b = l.activeB(),
      xin = l.adapterInput(x); // (r', i'), (o', r')
    return add(l.baseForward(x), scale(linear(linear(xin, a), b), l.scaling));
  },
  maskDelta() {},
};

export class LoraLinear implements LinearLike {
  readonly loraA: Tensor; // (rMax, in)
  readonly loraB: Tensor; // (out, rMax)
  readonly rMax: number;
  readonly alpha: number;
  dropoutP: number;
  /** active rank r' ≤ rMax (0 disables the adapter path) */
  activeRank: number;
  /** active output channels (first rows of W and B) and input channels (first columns of W and A) */
  activeOut: number;
  activeIn: number;
  /** dropout randomness, one stream or one per batch row; set by the trainer (seeded). Dropout runs only when `training` is true. */
  rng: Rng | Rng[] | null = null;
  training = false;
  /** how the update acts on the base (plain LoRA unless SQFT's enableSparsePeft / enableQuantAware set another) */
  variant: LoraVariant = PLAIN_LORA;
  /**
   * `base` may be swapped for an equivalent inference form of the same weight (SparseLinear). `baseQuant`: the
   * base weight's GPTQ quantisation when the base model is quantised (`base` then holds its dequantised values).
   */
  constructor(
    public base: Linear,
    readonly name: string,
    opts: LoraOptions,
    init: { rng: Rng } | { a: Tensor; b: Tensor },
    readonly baseQuant: QuantizedWeight | null = null,
  ) {
    if (!Number.isInteger(opts.rank) || opts.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${opts.rank} (${name})`);
    const [out, inF] = base.weightShape;
    this.rMax = opts.rank;
    this.alpha = opts.alpha;
    this.dropoutP = opts.dropout;
    if ('rng' in init) {
      const bound = 1 / Math.sqrt(inF); // kaiming_uniform_(a=√5): gain √(2/(1+5)) · √(3/in) = 1/√in
      const a = new Float32Array(opts.rank * inF);
      for (let i = 0; i < a.length; i++) a[i] = (init.rng.uniform() * 2 - 1) * bound;
      this.loraA = tensor(a, [opts.rank, inF]);
      this.loraB = tensor(new Float32Array(out * opts.rank), [out, opts.rank]);
    } else {
      checkShape(init.a, [opts.rank, inF], `${name}.lora_A`);
      checkShape(init.b, [out, opts.rank], `${name}.lora_B`);
      this.loraA = init.a;
      this.loraB = init.b;
    }
    this.loraA.requiresGrad = true;
    this.loraB.requiresGrad = true;
    this.loraA.name = `${name}.lora_A.weight`;
    this.loraB.name = `${name}.lora_B.weight`;
    this.activeRank = opts.rank;
    [this.activeOut, this.activeIn] = [out, inF];
  }

  get scaling(): number {
    return this.alpha / this.rMax;
  }

  get inFeatures(): number {
    return this.activeIn;
  }

  get outFeatures(): number {
    return this.activeOut;
  }

  /** Restores the full (maximal) sizes. */
  resetActive(): void {
    this.activeRank = this.rMax;
    [this.activeOut, this.activeIn] = this.base.weightShape;
  }

  /** x (…, activeIn) → (…, activeOut) */
  forward(x: Tensor): Tensor {
    return this.variant.forward(this, x);
  }

  /** W[:o', :i'] x + b[:o']: the base at the active widths (its own forward, e.g. the sparse kernel, at full size) */
  baseForward(x: Tensor): Tensor {
    return elasticForward(this.base, this.base, x, this.activeOut, this.activeIn);
  }

  /** A[:r', :i'] (r', i'): the tensor itself at full size, else a strided view */
  activeA(): Tensor {
    const r = this.activeRank,
      i = this.activeIn;
    return r === this.rMax && i === this.base.weightShape[1] ? this.loraA : narrow(narrow(this.loraA, 0, 0, r), 1, 0, i);
  }

  /** B[:o', :r'] (o', r') */
  activeB(): Tensor {
    const r = this.activeRank,
      o = this.activeOut;
    return r === this.rMax && o === this.base.weightShape[0] ? this.loraB : narrow(narrow(this.loraB, 0, 0, o), 1, 0, r);
  }

  /** What the adapter path sees: dropout(x) in training (seeded by `rng`), else x itself. */
  adapterInput(x: Tensor): Tensor {
    return this.training && this.dropoutP > 0 ? dropout(x, this.dropoutP, this.requireRng()) : x;
  }

  trainable(): Tensor[] {
    return [this.loraA, this.loraB];
  }

  baseTensors(): Tensor[] {
    return this.base.baseTensors();
  }

  /** The active slice of s · B A, (o', i') dense (for merging and extraction). */
  deltaWeight(): Float32Array {
    const o = this.activeOut,
      i = this.activeIn,
      r = this.activeRank;
    const out = new Float32Array(o * i);
    if (r === 0 || o === 0 || i === 0) return out;
    // (o', i') = s · B[:o', :r'] (row stride rMax) · A[:r', :i'] (row stride in)
    kernels().gemm(
      false,
      false,
      o,
      i,
      r,
      this.scaling,
      this.loraB.data,
      0,
      this.rMax,
      this.loraA.data,
      0,
      this.base.weightShape[1],
      0,
      out,
      0,
      i,
    );
    this.variant.maskDelta(this, out);
    return out;
  }

  private requireRng(): Rng | Rng[] {
    if (!this.rng) throw new Error(`LoRA ${this.name}: dropout in training needs an Rng (set module.rng)`);
    return this.rng;
  }
}

/**
 * The one way to attach a LoRA to a projection, whatever form its base weight is in: a float or bf16 Linear
 * or a SparseLinear is wrapped as is; a GPTQ QuantLinear through its dequantised weight, remembering the
 * quantiser (SQFT). A projection that already has an adapter is refused.
 */
export function wrapWithLora(m: LinearLike, name: string, opts: LoraOptions, init: { rng: Rng } | { a: Tensor; b: Tensor }): LoraLinear {
  if (m instanceof QuantLinear) return new LoraLinear(m.base, name, opts, init, m.qw);
  if (m instanceof Linear) return new LoraLinear(m, name, opts, init);
  throw new Error(`${name} already has an adapter (a ${m.constructor.name}); LoRA wraps a Linear or a QuantLinear`);
}

/** Runs `fn` with every adapter path of `loras` off (rank 0), then gives each its rank back (also when `fn` throws). */
export function withAdaptersOff<T>(loras: LoraLinear[], fn: () => T): T {
  const ranks = loras.map((l) => l.activeRank);
  loras.forEach((l) => (l.activeRank = 0));
  try {
    return fn();
  } finally {
    loras.forEach((l, k) => (l.activeRank = ranks[k]));
  }
}

function checkShape(t: Tensor, shape: number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${what}: shape [${t.shape.join(', ')}] does not match the base layer (expected [${shape.join(', ')}])`);
  }
}
