/** The tensor layer: storage and views, autograd, differentiable ops, seeded randomness. */
export { Tensor, zeros, full, tensor, parameter, cast, numel, sameShape, fmtShape, matrixOperand } from './tensor.ts';
export type { DType } from './tensor.ts';
export { backward, noGrad, isGradEnabled, needsGrad, zeroGrad, graphBytes } from './autograd.ts';
export { checkpoint } from './checkpoint.ts';
export {
  add,
  sub,
  mul,
  maskMul,
  scale,
  sum,
  mean,
  dropout,
  reshape,
  narrow,
  permute,
  contiguous,
  linear,
  matmul,
  fakeQuant,
  roundHalfEven,
} from './ops.ts';
export type { QuantParams } from './ops.ts';
export { BitMask } from './bitmask.ts';
export { embedding, rmsnorm, silu, swiglu, rope, softmax, attention, crossEntropy } from './nn-ops.ts';
export type { RopeTables } from './nn-ops.ts';
export { Bf16Matrix, linearBf16 } from './bf16.ts';
export { Rng } from './rng.ts';
export type { RngState } from './rng.ts';
