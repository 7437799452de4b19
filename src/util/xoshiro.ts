/**
 * xoshiro128** (Blackman & Vigna): the generator behind every random number of lonas (src/tensor/rng.ts) and
 * the dropout kernels' twin (src/kernels/reference-train.ts; native/dropout.cc is its C++ copy). The state
 * is 4 uint32 words at s[o..o+3], advanced in place.
 */
export function xoshiro128ss(s: Uint32Array, o: number): number {
  const s0 = s[o],
    s1 = s[o + 1],
    s2 = s[o + 2] ^ s0,
    s3 = s[o + 3] ^ s1;
  const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
  s[o] = s0 ^ s3;
  s[o + 1] = s1 ^ s2;
  s[o + 2] = s2 ^ (s1 << 9);
  s[o + 3] = rotl(s3, 11);
  return result;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
