/**
 * LoRA wrapping a frozen base Linear, with elastic rank and elastic input/output widths.
 *
 *   y = W[:o', :i'] x + s · B[:o', :r'] (A[:r', :i'] dropout(x)),   s = alpha / r_max
 *
 * A: (r_max, in), Kaiming-uniform (as PEFT: kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in)); B: (out, r_max),
 * zero, so an untrained adapter changes nothing. The active sizes (r', o', i') are plain fields set
 * explicitly by a sub-network configuration; slices are strided views multiplied in place (no copies).
 * The scaling stays alpha / r_max whatever r' is, as the reference implementation does.
 */
import { Rng, Tensor, add, contiguous, dropout, fakeQuant, linear, matmul, mul, narrow, scale, tensor } from '../tensor/index.ts';
import type { QuantParams } from '../tensor/index.ts';
import type { QuantizedWeight } from '../io/gptq-format.ts';
import type { Linear, LinearLike } from '../nn/modules.ts';
import { kernels } from '../kernels/index.ts';

export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
}

export class LoraLinear implements LinearLike {
  readonly loraA: Tensor; // (rMax, in)
  readonly loraB: Tensor; // (out, rMax)
  readonly rMax: number;
  readonly alpha: number;
  dropoutP: number;
  /** active rank r' ≤ rMax (0 disables the adapter path) */
  activeRank: number;
  /** dropout randomness, one stream or one per batch row; set by the trainer (seeded). Dropout runs only when `training` is true. */
  rng: Rng | Rng[] | null = null;
  training = false;
  /**
   * SparsePEFT (SQFT): the base's non-zero pattern M (out, in) as 0/1. The adapter contributes (s·B A) ⊙ M,
   * so merging keeps the base's zeros exactly.
   */
  sparseMask: Tensor | null = null;
  /**
   * QA-SparsePEFT (SQFT): the base's fixed INT4 quantiser. The layer computes with
   * fakeQuant(W + (s·B A) ⊙ M) — the weight an INT4 merge would store — with a straight-through gradient.
   */
  quant: QuantParams | null = null;
  /** the base weight's GPTQ quantisation when the base model is quantised (the base holds its dequantised values) */
  baseQuant: QuantizedWeight | null = null;

  /** `base` may be swapped for an equivalent inference form of the same weight (SparseLinear). */
  constructor(public base: Linear, readonly name: string, opts: LoraOptions, init: { rng: Rng } | { a: Tensor; b: Tensor }) {
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
  }

  /** active output channels (first rows of W and B); the base layer holds the value */
  get activeOut(): number {
    return this.base.activeOut;
  }

  set activeOut(v: number) {
    this.base.activeOut = v;
  }

  /** active input channels (first columns of W and A) */
  get activeIn(): number {
    return this.base.activeIn;
  }

  set activeIn(v: number) {
    this.base.activeIn = v;
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
    [this.base.activeOut, this.base.activeIn] = this.base.weightShape;
  }

  /** x (…, activeIn) → (…, activeOut) */
  forward(x: Tensor): Tensor {
    const [out, inF] = this.base.weightShape;
    const o = this.activeOut, i = this.activeIn, r = this.activeRank;
    const full = o === out && i === inF;
    if (r === 0 && !this.quant) return this.base.forward(x);
    const a = r === this.rMax && i === inF ? this.loraA : narrow(narrow(this.loraA, 0, 0, r), 1, 0, i); // (r', i')
    const b = r === this.rMax && o === out ? this.loraB : narrow(narrow(this.loraB, 0, 0, o), 1, 0, r); // (o', r')
    const xin = this.training && this.dropoutP > 0 ? dropout(x, this.dropoutP, this.requireRng()) : x;
    if (!this.sparseMask && !this.quant) {
      // y = W x + s · B (A dropout(x))
      return add(this.base.forward(x), scale(linear(linear(xin, a), b), this.scaling));
    }
    // SQFT: the adapter acts through a dense, masked delta (o', i') = (s · B A) ⊙ M
    let delta = scale(matmul(contiguous(b), contiguous(a)), this.scaling);
    if (this.sparseMask) delta = mul(delta, full ? this.sparseMask : contiguous(narrow(narrow(this.sparseMask, 0, 0, o), 1, 0, i)));
    if (!this.quant) return add(this.base.forward(x), linear(xin, delta)); // W x + (ΔW ⊙ M) dropout(x)
    if (xin !== x) throw new Error(`LoRA ${this.name}: quantisation-aware training needs --dropout 0 (the quantised merged weight has no separate adapter path)`);
    // QA-SparsePEFT: y = fakeQuant(W + ΔW ⊙ M) x, the weight an INT4 merge stores; straight-through gradient
    const w = this.base.weight;
    const merged = add(contiguous(full ? w : narrow(narrow(w, 0, 0, o), 1, 0, i)), delta);
    const bias = this.base.bias ? narrow(this.base.bias, 0, 0, o) : null;
    return linear(x, fakeQuant(merged, this.quant), bias);
  }

  trainable(): Tensor[] {
    return [this.loraA, this.loraB];
  }

  baseTensors(): Tensor[] {
    return this.base.baseTensors();
  }

  /** The active slice of s · B A, (o', i') dense (for merging and extraction). */
  deltaWeight(): Float32Array {
    const o = this.activeOut, i = this.activeIn, r = this.activeRank;
    const out = new Float32Array(o * i);
    if (r === 0 || o === 0 || i === 0) return out;
    // (o', i') = s · B[:o', :r'] (row stride rMax) · A[:r', :i'] (row stride in)
    kernels().gemm(false, false, o, i, r, this.scaling, this.loraB.data, 0, this.rMax, this.loraA.data, 0, this.base.weightShape[1], 0, out, 0, i);
    if (this.sparseMask) {
      const m = this.sparseMask.data, inF = this.base.weightShape[1];
      for (let row = 0; row < o; row++) for (let col = 0; col < i; col++) out[row * i + col] *= m[row * inF + col];
    }
    return out;
  }

  private requireRng(): Rng | Rng[] {
    if (!this.rng) throw new Error(`LoRA ${this.name}: dropout in training needs an Rng (set module.rng)`);
    return this.rng;
  }
}

function checkShape(t: Tensor, shape: number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${what}: shape [${t.shape.join(', ')}] does not match the base layer (expected [${shape.join(', ')}])`);
  }
}
