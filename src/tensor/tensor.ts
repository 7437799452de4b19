/**
 * Tensor: a strided view over a flat float32 (or float64, for gradient checks) buffer, plus the autograd
 * fields. Views (reshape of contiguous data, narrow) share the buffer; most kernels need contiguous
 * inputs and call `contiguousData()`, while matrix products take 2-D views with a row stride directly
 * (see `matrixOperand`) so that slices of a weight are multiplied in place.
 */
import type { FloatArray } from '../kernels/api.ts';
import type { GradRef, TapeNode } from './autograd.ts';
import { scratchF32, scratchF32Out } from './scratch.ts';

export type DType = 'f32' | 'f64';

export class Tensor {
  /** Storage, shared between views. */
  readonly data: FloatArray;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  /** Leaves: whether backward() should produce `.grad`. Non-leaves: whether any input needed a gradient. */
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf (same shape, contiguous). */
  grad: Tensor | null = null;
  /**
   * How the graph refers to this tensor once it has a producer: its node, shape and identity, not its data, so the
   * graph keeps a buffer alive only where an op saved it for its backward (autograd.ts `GradRef`).
   */
  private ref: GradRef | null = null;
  /** Optional label used in error messages (e.g. a parameter name). */
  name?: string;

  constructor(
    data: FloatArray,
    shape: readonly number[],
    opts: { strides?: readonly number[]; offset?: number; requiresGrad?: boolean; name?: string } = {},
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`invalid tensor shape [${shape.join(', ')}]`);
    }
    this.data = data;
    this.shape = [...shape];
    this.strides = opts.strides ? [...opts.strides] : contiguousStrides(shape);
    this.offset = opts.offset ?? 0;
    this.requiresGrad = opts.requiresGrad ?? false;
    if (opts.name !== undefined) this.name = opts.name;
    if (!opts.strides && this.offset + this.size > data.length) {
      throw new Error(
        `tensor of shape [${shape.join(', ')}] needs ${this.size} elements from offset ${this.offset}, buffer has ${data.length}`,
      );
    }
  }

  /** The recorded operation that produced this tensor (null for leaves and no-grad results). */
  get node(): TapeNode | null {
    return this.ref?.node ?? null;
  }

  set node(n: TapeNode | null) {
    if (n === null && this.ref === null) return;
    this.gradRef().node = n;
  }

  /** The graph's handle on this tensor (one per tensor, so every consumer's gradient meets in one place). */
  gradRef(): GradRef {
    this.ref ??= { node: null, shape: this.shape, requiresGrad: true };
    return this.ref;
  }

  get dtype(): DType {
    return this.data instanceof Float64Array ? 'f64' : 'f32';
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  get isContiguous(): boolean {
    const expected = contiguousStrides(this.shape);
    return this.shape.every((d, i) => d === 1 || this.strides[i] === expected[i]);
  }

  /** The elements in row-major order: the buffer itself (a subarray) when contiguous, else a copy. */
  contiguousData(): FloatArray {
    if (this.isContiguous) {
      return this.offset === 0 && this.data.length === this.size ? this.data : this.data.subarray(this.offset, this.offset + this.size);
    }
    const out = new (this.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(this.size);
    copyStrided(this, out);
    return out;
  }

  /** Values as a plain array (tests, small tensors). */
  toArray(): number[] {
    return Array.from(this.contiguousData());
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got shape [${this.shape.join(', ')}]`);
    return this.data[this.offset];
  }

  toString(): string {
    return `Tensor(${this.name ? `${this.name}, ` : ''}[${this.shape.join(', ')}], ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Copies a strided tensor's elements into `out` in row-major order. */
function copyStrided(t: Tensor, out: FloatArray): void {
  const nd = t.ndim;
  const idx = new Array<number>(nd).fill(0);
  const inner = nd === 0 ? 1 : t.shape[nd - 1];
  const innerStride = nd === 0 ? 0 : t.strides[nd - 1];
  const outer = inner === 0 ? 0 : t.size / inner;
  let o = 0;
  for (let r = 0; r < outer; r++) {
    let base = t.offset;
    for (let d = 0; d < nd - 1; d++) base += idx[d] * t.strides[d];
    for (let j = 0; j < inner; j++) out[o++] = t.data[base + j * innerStride];
    for (let d = nd - 2; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
}

// ---- construction -------------------------------------------------------------------------------

/**
 * A zeroed buffer of n elements in the precision of `like` (float64 for gradient checks, else float32; pooled
 * inside withScratch, see scratch.ts).
 */
export function allocLike(like: Tensor | FloatArray, n: number): FloatArray {
  const data = like instanceof Tensor ? like.data : like;
  return data instanceof Float64Array ? new Float64Array(n) : scratchF32(n);
}

/**
 * allocLike for an output whose every element the caller writes before it is read (not zeroed; see
 * scratchF32Out). float64 (the gradient checks) stays zeroed.
 */
export function allocOut(like: Tensor | FloatArray, n: number): FloatArray {
  const data = like instanceof Tensor ? like.data : like;
  return data instanceof Float64Array ? new Float64Array(n) : scratchF32Out(n);
}

function alloc(n: number, dtype: DType): FloatArray {
  return dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
}

export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return new Tensor(alloc(numel(shape), dtype), shape);
}

export function full(shape: readonly number[], value: number, dtype: DType = 'f32'): Tensor {
  const t = zeros(shape, dtype);
  t.data.fill(value);
  return t;
}

/** A tensor owning a copy of `values` (row-major). */
export function tensor(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (values.length !== numel(shape)) {
    throw new Error(`tensor(): ${values.length} values do not fill shape ${fmtShape(shape)} (${numel(shape)} elements)`);
  }
  const data = alloc(values.length, dtype);
  data.set(values);
  return new Tensor(data, shape);
}

/** A trainable leaf. */
export function parameter(t: Tensor, name?: string): Tensor {
  const p = new Tensor(t.contiguousData(), t.shape, { requiresGrad: true, name: name ?? t.name });
  return p;
}

/** Converts the dtype (copy). */
export function cast(t: Tensor, dtype: DType): Tensor {
  const src = t.contiguousData();
  const data = alloc(src.length, dtype);
  data.set(src);
  return new Tensor(data, t.shape, { name: t.name });
}

/** A 2-D matrix operand for gemm: a view whose last axis has stride 1 (row-major) or whose first has (transposed). */
export interface MatrixOperand {
  data: FloatArray;
  off: number;
  ld: number;
  trans: boolean;
}

/** Describes a 2-D tensor view as (data, offset, leading dimension, transposed) for gemm without copying. */
export function matrixOperand(t: Tensor): MatrixOperand {
  if (t.ndim !== 2) throw new Error(`matrix operand must be 2-D, got ${fmtShape(t.shape)}`);
  const [rows, cols] = t.shape;
  const [s0, s1] = t.strides;
  if (s1 === 1 || cols === 1) return { data: t.data, off: t.offset, ld: Math.max(s0, cols, 1), trans: false };
  if (s0 === 1 || rows === 1) return { data: t.data, off: t.offset, ld: Math.max(s1, rows, 1), trans: true };
  const c = t.contiguousData();
  return { data: c, off: 0, ld: Math.max(cols, 1), trans: false };
}
