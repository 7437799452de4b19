/** Test weights of bfloat16 values. */
import { Bf16Matrix } from '../../src/tensor/index.ts';
import type { Rng, Tensor } from '../../src/tensor/index.ts';
import { randomNormal } from '../../src/nn/modules.ts';
import { f32ToBf16 } from '../../src/io/safetensors.ts';

/** A (rows, cols) weight of bfloat16 values, as bits and as the float32 tensor of the same values. */
export function bf16Weight(rng: Rng, rows: number, cols: number): { bits: Bf16Matrix; f32: Tensor } {
  const f = randomNormal(rng, [rows, cols], 0.5);
  const bits = new Uint16Array(rows * cols);
  f32ToBf16(f.data as Float32Array, bits);
  const m = new Bf16Matrix(bits, [rows, cols], 'w');
  return { bits: m, f32: m.toTensor() };
}
