/**
 * Building blocks with parameters. A model holds `LinearLike` modules, so adapters (LoRA, elastic
 * widths: src/adapters) can wrap a base Linear without the model code knowing.
 */
import { SMALL_GEMM_MAX_ROWS } from '../kernels/bf16-bits.ts';
import { gemmCompute } from '../kernels/compute-mode.ts';
import { Bf16Matrix, BitMask, type Rng, Tensor, embedding, linear, linearBf16, rmsnorm, tensor } from '../tensor/index.ts';

export interface LinearLike {
  /** the sizes the module computes with (an elastic wrapper's active widths, else the weight's) */
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** x (…, in) → (…, out) */
  forward(x: Tensor): Tensor;
  /** The trainable tensors of this module (frozen base weights are not included). */
  trainable(): Tensor[];
  /** The base layer's weight and bias (what a model checkpoint stores), adapters excluded. */
  baseTensors(): Tensor[];
}

/**
 * Where a (frozen or trainable) weight lives: a float32 Tensor, or — for a BF16 checkpoint loaded with
 * weights 'auto'/'bf16' — its bfloat16 bits, which the kernels widen in registers (half the bytes per
 * product; the same values, so the same products). Forwards, input gradients (LoRA over a frozen base) and
 * parameter counts (`nonZero`) read the bits. Whatever needs the weight as a float32 Tensor (training it,
 * pruning, merging, saving) gets it from `tensor()`: widened exactly, once; the
 * bits are then dropped and every module sharing the store (a tied embedding and LM head) computes from that
 * tensor. So a bf16 weight never changes a number, only memory and speed; `bf16` tells which form it is in.
 */
export class WeightStore {
  private t: Tensor | null;
  private b: Bf16Matrix | null;
  private rounded: Bf16Matrix | null = null; // the bf16 compute mode's copy of t (computeBits)

  constructor(w: Tensor | Bf16Matrix) {
    this.t = w instanceof Tensor ? w : null;
    this.b = w instanceof Bf16Matrix ? w : null;
  }

  get shape(): readonly number[] {
    return this.b ? this.b.shape : this.t!.shape;
  }

  get name(): string | undefined {
    return this.b ? this.b.name : this.t!.name;
  }

  /** The bfloat16 bits while the weight is kept in bf16, else null. */
  get bf16(): Bf16Matrix | null {
    return this.b;
  }

  /**
   * The bits a product with `rows` rows of x runs on: the kept bf16 bits; or, in the bf16 GEMM compute mode
   * (src/kernels/compute-mode.ts) with more than 16 rows and a frozen float32 weight, that weight rounded to
   * bfloat16 (once: the copy is kept beside the float32 tensor, which stays as it is); else null (float32).
   */
  computeBits(rows: number): Bf16Matrix | null {
    if (this.b || gemmCompute() !== 'bf16' || rows <= SMALL_GEMM_MAX_ROWS || this.t!.requiresGrad) return this.b;
    this.rounded ??= Bf16Matrix.rounded(this.t!);
    return this.rounded;
  }

  /**
   * Non-zero entries of the leading (rows, cols) block of the (out, in) weight (an elastic-width slice), read
   * from the stored form: a bf16 weight from its bits (±0 is bits & 0x7fff = 0), so counting never widens it.
   */
  nonZero(rows: number, cols: number): number {
    const ld = this.shape[1];
    let n = 0;
    if (this.b) {
      const bits = this.b.bits;
      for (let r = 0; r < rows; r++) for (let k = r * ld, end = k + cols; k < end; k++) if (bits[k] & 0x7fff) n++;
    } else {
      const data = this.t!.data;
      for (let r = 0; r < rows; r++) for (let k = r * ld, end = k + cols; k < end; k++) if (data[k] !== 0) n++;
    }
    return n;
  }

  /** (out·in) 1 where the weight is non-zero, 0 where it is ±0, read from the stored form (a bf16 weight stays bf16). */
  nonZeroMask(): BitMask {
    const n = this.shape[0] * this.shape[1];
    if (this.b) {
      const bits = this.b.bits;
      return BitMask.from(n, (k) => (bits[k] & 0x7fff) !== 0);
    }
    const data = this.t!.data;
    return BitMask.from(n, (k) => data[k] !== 0);
  }

  /** The weight as a float32 Tensor (widening a bf16 weight exactly, once, for every module sharing this store). */
  tensor(): Tensor {
    if (this.b) {
      this.t = this.b.toTensor();
      this.b = null;
    }
    return this.t!;
  }
}

/**
 * y = x Wᵀ + b. W may be kept in bfloat16 (see WeightStore): then the forward runs `linearBf16` on the bits,
 * differentiable in x (the weight is frozen).
 */
export class Linear implements LinearLike {
  private store: WeightStore;

  constructor(
    weight: Tensor | Bf16Matrix | WeightStore,
    public bias: Tensor | null = null,
  ) {
    this.store = weight instanceof WeightStore ? weight : new WeightStore(weight);
    const shape = this.store.shape;
    if (shape.length !== 2) throw new Error(`Linear: weight ${this.store.name ?? ''} must be 2-D (out, in), got [${shape.join(', ')}]`);
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== shape[0])) {
      throw new Error(`Linear: bias ${bias.name ?? ''} of shape [${bias.shape.join(', ')}] does not match ${shape[0]} outputs`);
    }
  }

  /** The float32 weight (out, in); a bf16 weight is widened to float32 for good on first access (see WeightStore). */
  get weight(): Tensor {
    return this.store.tensor();
  }

  /** Replaces the weight: a float32 tensor, or bfloat16 bits to keep it in bf16. */
  set weight(t: Tensor | Bf16Matrix) {
    this.store = new WeightStore(t);
  }

  /** (out, in) of the stored weight, without converting it. */
  get weightShape(): readonly number[] {
    return this.store.shape;
  }

  /** The weight's storage (shared with a tied module). */
  get weightStore(): WeightStore {
    return this.store;
  }

  get inFeatures(): number {
    return this.store.shape[1];
  }

  get outFeatures(): number {
    return this.store.shape[0];
  }

  forward(x: Tensor): Tensor {
    const bits = this.store.computeBits(rowsOf(x));
    if (bits) return linearBf16(x, bits, this.outFeatures, this.inFeatures, this.bias);
    return linear(x, this.weight, this.bias);
  }

  trainable(): Tensor[] {
    const w = this.store.bf16 ? null : this.weight; // a bf16 weight is frozen
    return [w, this.bias].filter((t): t is Tensor => t?.requiresGrad === true);
  }

  baseTensors(): Tensor[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
}

/** Rows of x (…, in): the product's m. */
export function rowsOf(x: Tensor): number {
  return x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
}

export class RMSNorm {
  constructor(
    public weight: Tensor,
    public eps: number,
  ) {}

  forward(x: Tensor): Tensor {
    return rmsnorm(x, this.weight, this.eps);
  }
}

export class Embedding {
  private store: WeightStore;

  /** weight (vocab, dim), float32 or kept in bfloat16 (see WeightStore) */
  constructor(weight: Tensor | Bf16Matrix | WeightStore) {
    this.store = weight instanceof WeightStore ? weight : new WeightStore(weight);
  }

  /** The float32 table; a bf16 table is widened for good on first access (see WeightStore). */
  get weight(): Tensor {
    return this.store.tensor();
  }

  set weight(t: Tensor) {
    this.store = new WeightStore(t);
  }

  get weightStore(): WeightStore {
    return this.store;
  }

  /** ids (…) → (…, dim). A bf16 table is frozen: its rows are widened (exactly), with no gradient. */
  forward(ids: Int32Array, shape: readonly number[]): Tensor {
    const bits = this.store.bf16;
    if (!bits) return embedding(this.weight, ids, shape);
    const [vocab, dim] = bits.shape;
    const out = new Float32Array(ids.length * dim);
    const u = new Uint32Array(out.buffer);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(id >= 0 && id < vocab))
        throw new Error(`embedding: token id ${id} at position ${t} is outside the vocabulary (0..${vocab - 1})`);
      for (let j = 0, src = id * dim, dst = t * dim; j < dim; j++) u[dst + j] = bits.bits[src + j] << 16;
    }
    return new Tensor(out, [...shape, dim]);
  }
}

/** Normal(0, std) initialised tensor (seeded). */
export function randomNormal(rng: Rng, shape: number[], std: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal() * std;
  return tensor(v, shape);
}
