/** bfloat16 bit helpers of the reference kernels (src/kernels/reference.ts). */
import type { FloatArray } from './api.ts';

const BF16_U32 = new Uint32Array(1);
const BF16_F32 = new Float32Array(BF16_U32.buffer);

/** The float32 value of bfloat16 bits (the top half of the float32 bits): exact. */
export function bf16Value(bits: number): number {
  BF16_U32[0] = bits << 16;
  return BF16_F32[0];
}

/** bfloat16 bits of fround(v), round to nearest even (NaN stays a quiet NaN), as torch's .to(torch.bfloat16). */
function toBf16Bits(v: number): number {
  BF16_F32[0] = v;
  const b = BF16_U32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** dst[i] = the bfloat16 bits of src[i], rounded as toBf16Bits (a plain loop over the float32 bits: fast on large weights). */
export function roundToBf16Bits(src: Float32Array, dst: Uint16Array): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    dst[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
}

/** Rows up to which gemmBf16's bf16-act mode applies (native/small-gemm.h kSmallGemmMaxRows). */
export const SMALL_GEMM_MAX_ROWS = 16;

/** (m, k) copy of A's rows (row stride lda, from aOff), each value rounded to bfloat16 and widened back. */
export function roundedToBf16(a: FloatArray, aOff: number, lda: number, m: number, k: number): Float32Array {
  const out = new Float32Array(m * k);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) out[i * k + p] = bf16Value(toBf16Bits(a[aOff + i * lda + p]));
  return out;
}
