/**
 * A GPTQ projection as com.microsoft MatMulNBits, with the checkpoint's own codes, scales, zero points and
 * group size: the dequantised weight (q − zero) · scale is the same number for every element, nothing is
 * requantised. MatMulNBits (ONNX Runtime contrib op) takes, for y = x · Wᵀ with W (N, K):
 *   B            uint8 (N, ⌈K/block⌉, block/2): each output row's codes along K, two per byte, low nibble first
 *   scales       float32 (N · ⌈K/block⌉), row-major by output
 *   zero_points  uint8 (N · ⌈⌈K/block⌉/2⌉): the blocks' zeros of each output, two per byte, low nibble first
 * with block_size a power of two ≥ 16 (the GPTQ group size). Act-order checkpoints (g_idx not ⌊k/group⌋)
 * are exported with their input channels reordered so that each group is contiguous — a Gather on the
 * activations with the same order (`inputOrder`) keeps y exact; a g_idx whose groups are not all of the
 * group size cannot be expressed and is refused.
 */
import type { QuantizedWeight } from '../../nn/quantized-weight.ts';
import { DType } from './graph.ts';
import type { AttrValue, GraphBuilder } from './graph.ts';

export interface MatMulNBitsInputs {
  b: string;
  scales: string;
  zeroPoints: string;
  /** int64 (K): input channel at each position of B's K axis, or null when the order is the identity */
  inputOrder: string | null;
  attrs: Record<string, AttrValue>;
}

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** Input channels ordered by group (stable), or null when g_idx is already ⌊k/group⌋. Throws if groups are uneven. */
export function groupOrder(module: string, gIdx: Int32Array, groupSize: number): Int32Array | null {
  const K = gIdx.length;
  if (gIdx.every((gr, k) => gr === Math.floor(k / groupSize))) return null;
  const order = Int32Array.from({ length: K }, (_, k) => k).sort((a, b) => gIdx[a] - gIdx[b] || a - b);
  order.forEach((k, j) => {
    if (gIdx[k] !== Math.floor(j / groupSize)) {
      throw new Error(
        `${module}.g_idx: group ${gIdx[k]} does not hold exactly ${groupSize} input channels, which MatMulNBits needs ` +
          '(export without --int4 to write the dequantised float weights)',
      );
    }
  });
  return order;
}

/** Adds the initializers of `qw` (module e.g. model.layers.0.mlp.up_proj) and returns MatMulNBits' inputs and attributes. */
export function matMulNBits(g: GraphBuilder, module: string, qw: QuantizedWeight): MatMulNBitsInputs {
  const { out: N, inF: K, bits, groupSize: block } = qw;
  if (bits !== 4)
    throw new Error(`${module}: a ${bits}-bit GPTQ checkpoint; --int4 exports 4-bit checkpoints (export without --int4 for float weights)`);
  if (!isPowerOfTwo(block) || block < 16) {
    throw new Error(
      `${module}: GPTQ group size ${block} is not a power of two ≥ 16, which MatMulNBits' block_size must be ` +
        '(quantise with --group-size 32, 64 or 128, or export without --int4)',
    );
  }
  const order = groupOrder(module, qw.gIdx, block);
  const blocks = Math.ceil(K / block),
    blob = block / 2,
    zpStride = Math.ceil(blocks / 2);
  const packed = new Uint8Array(N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  const zeros = new Uint8Array(N * zpStride);
  for (let n = 0; n < N; n++) {
    const row = n * K,
      dst = n * blocks * blob;
    for (let j = 0; j < K; j++) packed[dst + (j >> 1)] |= qw.q[row + (order ? order[j] : j)] << ((j & 1) * 4);
    for (let b = 0; b < blocks; b++) {
      // group b of the (reordered) K axis is the checkpoint's group b: g_idx sorted is ⌊j/group⌋
      scales[n * blocks + b] = qw.scales[b * N + n];
      zeros[n * zpStride + (b >> 1)] |= qw.zeros[b * N + n] << ((b & 1) * 4);
    }
  }
  return {
    b: g.initializer(`${module}.MatMulNBits.B`, DType.UINT8, [N, blocks, blob], packed),
    scales: g.initializer(`${module}.MatMulNBits.scales`, DType.FLOAT, [N * blocks], scales),
    zeroPoints: g.initializer(`${module}.MatMulNBits.zero_points`, DType.UINT8, [N * zpStride], zeros),
    inputOrder: order ? g.initializer(`${module}.MatMulNBits.input_order`, DType.INT64, [K], BigInt64Array.from(order, BigInt)) : null,
    attrs: { K, N, bits: 4, block_size: block },
  };
}
