/**
 * attentionDecode (native/attention.cc: one query per row against a KV cache, fused) against its reference
 * twin and against the unfused path (gemm + softmax + gemm through attentionForward, masking padding keys):
 * GQA group sizes 1, 3, 4; head sizes with and without a vector tail; cache rows longer than the filled keys
 * (kvBatchStride); left padding per row (keyStart); one key. Argument errors name the kernel and argument. Every
 * SIMD level this CPU has is checked (the value sums run in 16-float vectors under AVX-512, 8-float ones otherwise).
 *
 * Run: node --import tsx --test test/kernels/attention-decode.test.ts   (build the addon first)
 * Tolerance: rtol 1e-5, atol 1e-6 (float32 scores, vexp and sums vs the double reference).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { referenceKernels as ref } from '../../src/kernels/reference.ts';
import { attentionForward } from '../../src/tensor/attention-core.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { randF32, seededUniform } from '../helpers/random.ts';
import { nativeKernels } from '../helpers/native.ts';
import { levels } from './helpers.ts';

const CASES = [
  { B: 1, Tk: 1, Hq: 4, Hkv: 4, D: 16, maxLen: 1, keyStart: null },
  { B: 3, Tk: 37, Hq: 9, Hkv: 3, D: 64, maxLen: 50, keyStart: [0, 5, 36] },
  { B: 2, Tk: 300, Hq: 8, Hkv: 2, D: 24, maxLen: 300, keyStart: null },
  { B: 4, Tk: 19, Hq: 6, Hkv: 2, D: 7, maxLen: 23, keyStart: [3, 0, 18, 1] },
  { B: 2, Tk: 45, Hq: 8, Hkv: 2, D: 128, maxLen: 45, keyStart: null }, // D in several vector chunks
];

for (const c of CASES) {
  test(`B ${c.B}, Tk ${c.Tk}, Hq ${c.Hq} / Hkv ${c.Hkv}, D ${c.D}${c.keyStart ? ', left padding' : ''}`, () => {
    const rng = seededUniform(0xa77 + c.Tk);
    const stride = c.maxLen * c.Hkv * c.D;
    const q = randF32(rng, c.B * c.Hq * c.D, 2),
      k = randF32(rng, c.B * stride),
      v = randF32(rng, c.B * stride);
    const ks = c.keyStart ? Int32Array.from(c.keyStart) : null;
    const scale = 1 / Math.sqrt(c.D);
    const on = new Float32Array(c.B * c.Hq * c.D),
      or = on.slice(),
      ou = on.slice();
    nativeKernels().attentionDecode(q, k, v, on, c.B, c.Tk, c.Hq, c.Hkv, c.D, stride, scale, ks);
    ref.attentionDecode(q, k, v, or, c.B, c.Tk, c.Hq, c.Hkv, c.D, stride, scale, ks);
    assertClose(on, or, 'native vs reference', { rtol: 1e-5, atol: 1e-6 });
    // the unfused path the model used before (gemm, softmax with padding keys at −1e30, gemm)
    attentionForward(nativeKernels(), q, k, v, ou, new Float32Array(c.B * c.Hq * c.Tk), {
      B: c.B,
      Tq: 1,
      Tk: c.Tk,
      Hq: c.Hq,
      Hkv: c.Hkv,
      D: c.D,
      kvBatchStride: stride,
      scale,
      causal: true,
      keyStart: ks,
    });
    assertClose(on, ou, 'native vs the unfused path', { rtol: 1e-5, atol: 1e-6 });
    for (const level of levels()) {
      nativeKernels().compressedIsa(level);
      const at = new Float32Array(on.length);
      nativeKernels().attentionDecode(q, k, v, at, c.B, c.Tk, c.Hq, c.Hkv, c.D, stride, scale, ks);
      assertClose(at, or, `native at SIMD level ${level} vs reference`, { rtol: 1e-5, atol: 1e-6 });
    }
    nativeKernels().compressedIsa('avx512');
  });
}

test('attentionDecode argument errors', () => {
  const a = new Float32Array(64);
  assert.throws(
    () => nativeKernels().attentionDecode(a, a, a, a, 1, 4, 3, 2, 4, 16, 1, null),
    /attentionDecode: Hq = 3 must be a positive multiple of Hkv = 2/,
  );
  assert.throws(
    () => nativeKernels().attentionDecode(a, a, a, a, 1, 4, 2, 2, 4, 16, 1, Int32Array.of(4)),
    /keyStart\[0\] = 4 leaves row 0 no key of 4/,
  );
  assert.throws(() => nativeKernels().attentionDecode(a, a, a, a, 2, 8, 2, 2, 4, 64, 1, null), /'k' has 64 elements but 128 are needed/);
  assert.throws(
    () => ref.attentionDecode(a, a, a, a, 1, 4, 2, 2, 4, 16, 1, Int32Array.of(-1)),
    /keyStart\[0\] = -1 leaves row 0 no key of 4/,
  );
});
