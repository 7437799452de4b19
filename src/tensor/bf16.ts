/**
 * bfloat16 weights kept as bfloat16. A Hugging Face checkpoint stored in BF16 holds exactly the values its
 * float32 upcast holds, so a frozen weight can stay in its 2-byte form and be widened in registers by the
 * kernels (`gemmBf16`): the same products of the same values, summed in float32, from half the bytes.
 *
 *   Bf16Matrix       the bits of a (rows, cols) weight, row-major
 *   linearBf16(...)  y = x · W[:o, :i]ᵀ (+ b), differentiable in x and b (the weight is frozen by construction)
 * In the bf16 GEMM compute mode (src/kernels/compute-mode.ts) products with more than 16 rows of x run
 * gemmBf16's compute 'bf16' (x rounded to bf16), forward and input gradient alike.
 */
import { kernelsFor, noteWeightKernel } from '../kernels/index.ts';
import { bf16Compute, gemmCompute } from '../kernels/compute-mode.ts';
import { SMALL_GEMM_MAX_ROWS, roundToBf16Bits } from '../kernels/bf16-bits.ts';
import { needsGrad, record } from './autograd.ts';
import { Tensor, allocLike, allocOut, fmtShape } from './tensor.ts';

/** bf16 → f32, exactly: the bf16 bits are the top half of the f32 bits. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
}

export class Bf16Matrix {
  /** bits (rows·cols) of a (rows, cols) row-major bfloat16 matrix; `name` for error messages */
  constructor(
    readonly bits: Uint16Array,
    readonly shape: readonly [number, number],
    public name?: string,
  ) {
    if (bits.length !== shape[0] * shape[1])
      throw new Error(`Bf16Matrix ${name ?? ''}: ${bits.length} values do not fill ${fmtShape(shape)}`);
  }

  /** The leading (rows, cols) block (an elastic-width slice) as its own matrix; the whole matrix itself when it is all of it. */
  leading(rows: number, cols: number): Bf16Matrix {
    const [r0, c0] = this.shape;
    if (rows === r0 && cols === c0) return this;
    if (rows > r0 || cols > c0)
      throw new Error(`Bf16Matrix ${this.name ?? ''}: (${rows}, ${cols}) is not a block of ${fmtShape(this.shape)}`);
    const out = new Uint16Array(rows * cols);
    for (let r = 0; r < rows; r++) out.set(this.bits.subarray(r * c0, r * c0 + cols), r * cols);
    return new Bf16Matrix(out, [rows, cols], this.name);
  }

  /** The float32 tensor of the same values (exact). */
  toTensor(): Tensor {
    const out = new Float32Array(this.bits.length);
    bf16ToF32(this.bits, out);
    return new Tensor(out, this.shape, { name: this.name });
  }

  /** The bits of a 2-D float32 tensor, each value rounded to bfloat16 (nearest even): the bf16 compute mode's copy of a float32 weight. */
  static rounded(t: Tensor): Bf16Matrix {
    if (t.ndim !== 2) throw new Error(`Bf16Matrix: ${t.name ?? 'tensor'} must be 2-D, got ${fmtShape(t.shape)}`);
    const src = t.contiguousData();
    const bits = new Uint16Array(src.length);
    roundToBf16Bits(src instanceof Float32Array ? src : Float32Array.from(src), bits);
    return new Bf16Matrix(bits, [t.shape[0], t.shape[1]], t.name);
  }

  /** The bits of a float32 tensor whose every value is a bfloat16 value; throws (naming the first other value) otherwise. */
  static exactly(t: Tensor): Bf16Matrix {
    if (t.ndim !== 2) throw new Error(`Bf16Matrix: ${t.name ?? 'tensor'} must be 2-D, got ${fmtShape(t.shape)}`);
    const src = t.contiguousData();
    const f = src instanceof Float32Array ? src : Float32Array.from(src);
    const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
    const bits = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) {
      if ((u[i] & 0xffff) !== 0 || f[i] !== src[i]) {
        throw new Error(`Bf16Matrix: ${t.name ?? 'tensor'}[${i}] = ${src[i]} is not a bfloat16 value (keeping it in bf16 would round it)`);
      }
      bits[i] = u[i] >>> 16;
    }
    return new Bf16Matrix(bits, [t.shape[0], t.shape[1]], t.name);
  }
}

/**
 * y = x · Wᵀ (+ b) with W the first `outF` rows and `inF` columns of `w` (an elastic-width slice, no copy).
 * x (…, inF) float32 (float64 in gradient checks: the reference kernels widen the same values); b (outF).
 * y (…, outF). Gradients flow to x (dx = dy · W) and b; the weight has none.
 */
export function linearBf16(x: Tensor, w: Bf16Matrix, outF: number, inF: number, b?: Tensor | null): Tensor {
  if (x.shape[x.ndim - 1] !== inF || outF > w.shape[0] || inF > w.shape[1]) {
    throw new Error(
      `linear: input ${fmtShape(x.shape)} does not match the bf16 weight ${w.name ?? ''} ${fmtShape(w.shape)} used as (${outF}, ${inF})`,
    );
  }
  if (b && (b.ndim !== 1 || b.shape[0] !== outF)) throw new Error(`linear: bias ${fmtShape(b.shape)} does not match ${outF} outputs`);
  const xd = x.contiguousData();
  const rows = xd.length / Math.max(inF, 1);
  const y = inF > 0 ? allocOut(x, rows * outF) : allocLike(x, rows * outF); // the product writes every element
  if (b) {
    const bd = b.contiguousData();
    for (let r = 0; r < rows; r++) y.set(bd, r * outF);
  }
  // bf16 GEMM mode with > 16 rows: 'bf16' (its backward too); else the compute mode at inference
  // (LONAS_BF16_COMPUTE), and a recorded forward stays exact, like its backward
  const compute = gemmCompute() === 'bf16' && rows > SMALL_GEMM_MAX_ROWS ? 'bf16' : needsGrad(x, b) ? 'exact' : bf16Compute();
  noteWeightKernel('bf16');
  if (rows > 0 && outF > 0)
    kernelsFor(xd).gemmBf16(true, rows, outF, inF, 1, xd, 0, Math.max(inF, 1), w.bits, 0, w.shape[1], b ? 1 : 0, y, 0, outF, compute);
  const out = new Tensor(y, [...x.shape.slice(0, -1), outF]);
  const backwardCompute = compute === 'bf16' ? 'bf16' : 'exact';
  return record('linearBf16', b ? [x, b] : [x], { w, outF, inF, xShape: x.shape, hasBias: !!b, compute: backwardCompute }, out);
}
