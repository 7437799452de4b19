/**
 * What each differentiable op saves for its backward pass. The keys of `OpSaved` are THE list of ops:
 * `vjp.ts` must provide a rule for every key (checked by the compiler via a mapped type).
 * Input gradients are returned in the order the op passed its inputs to `record`.
 */
import type { FloatArray } from '../kernels/api.ts';
import type { Tensor } from './tensor.ts';
import type { Bf16Matrix } from './bf16.ts';
import type { BitMask } from './bitmask.ts';

export interface OpSaved {
  /** inputs [a, b], same shape */
  add: Record<string, never>;
  /** inputs [a, b], same shape */
  sub: Record<string, never>;
  /** inputs [a, b], same shape */
  mul: { a: Tensor; b: Tensor };
  /** inputs [a] (rows, cols); y = a ⊙ M[:rows, :cols] with M a constant bit mask of row length ld */
  maskMul: { mask: BitMask; ld: number; rows: number; cols: number };
  /** inputs [a]; y = s·a */
  scale: { s: number };
  /** inputs [a]; y = Σ a (scalar) or mean */
  sum: { shape: readonly number[]; factor: number };
  /** inputs [a]; view with a new shape */
  reshape: { shape: readonly number[] };
  /** inputs [a]; view of a[start:start+length] along dim */
  narrow: { shape: readonly number[]; dim: number; start: number };
  /** inputs [a]; permuted view */
  permute: { dims: readonly number[] };
  /** inputs [a]; dense copy (gradient passes through) */
  contiguous: Record<string, never>;
  /** inputs [x, w] or [x, w, b]; y = x·wᵀ + b, x (…, in), w (out, in) possibly a strided slice */
  /** x: null when the weight needs no gradient (nothing else reads it) */
  linear: { x: Tensor | null; xShape: readonly number[]; w: Tensor; hasBias: boolean };
  /** inputs [x] or [x, b]; y = x·W[:outF, :inF]ᵀ + b with W a frozen bfloat16 matrix (no weight gradient) */
  /** compute: gemmBf16's mode for dx ('bf16' when the forward ran in the bf16 GEMM mode) */
  linearBf16: { w: Bf16Matrix; outF: number; inF: number; xShape: readonly number[]; hasBias: boolean; compute: 'exact' | 'bf16' };
  /** inputs [a, b]; (…, m, k)·(…, k, n), same batch */
  matmul: { a: Tensor; b: Tensor };
  /** inputs [w]; rows of w gathered by ids */
  embedding: { ids: Int32Array; vocab: number; dim: number };
  /** inputs [x, w] */
  rmsnorm: { x: Tensor; w: Tensor; rstd: FloatArray };
  /** inputs [x] */
  silu: { x: Tensor };
  /** inputs [gate, up] */
  swiglu: { gate: Tensor; up: Tensor };
  /** inputs [x], x (B, T, H, D) */
  rope: { positions: Int32Array; cos: FloatArray; sin: FloatArray };
  /** inputs [x]; softmax over the last axis */
  softmax: { y: Tensor; scale: number };
  /** inputs [q, k, v]; q (B, Tq, Hq, D), k/v (B, Tk, Hkv, D) */
  attention: { q: Tensor; k: Tensor; v: Tensor; probs: FloatArray; scale: number; causal: boolean };
  /** inputs [logits (N, V)]; mean over kept rows */
  crossEntropy: { logits: Tensor; targets: Int32Array; lse: FloatArray; ignoreIndex: number; kept: number };
  /** inputs [x]; y = x ⊙ mask / (1 − p) */
  dropout: { keep: Uint8Array; scale: number };
  /** inputs [w (out, in)]; group-wise asymmetric fake quantisation, straight-through gradient */
  fakeQuant: Record<string, never>;
  /**
   * inputs [x]; y = f(x) computed again under autograd during backward (activation checkpointing, checkpoint.ts):
   * `replay` back-propagates gy through the recomputed f, adding the gradients of f's parameters into their
   * leaves, and returns x's gradient
   */
  /** x: what the recomputation reads (held by `replay` too; named here so graphBytes counts it) */
  checkpoint: { x: Tensor; replay: (gy: Tensor, wants: boolean[]) => (Tensor | null)[] };
}

export type OpName = keyof OpSaved;

/** A backward rule: given what the op saved and the output gradient, the input gradients (null = not wanted). */
export type VjpRule<K extends OpName> = (saved: OpSaved[K], gy: Tensor, wants: boolean[]) => (Tensor | null)[];

export type VjpTable = { [K in OpName]: VjpRule<K> };
