/**
 * Reused float32 buffers for inference activations. A decode step of a batch of 8 allocated ~10 MB of
 * short-lived arrays and a packed prefill ~25 MB per layer; V8 answers every ~64 MB of fresh array memory with
 * a full garbage collection (~20 ms each here), which took ~18 % of a batched generation.
 *
 * Inside `withScratch(fn)`, `scratchF32(n)` (and so every op's output through allocLike) lends a zeroed buffer
 * from a pool; when fn returns, every buffer lent in the scope goes back to the pool. So the caller must not
 * keep anything allocated inside the scope: only copies may leave it (the model's layer loop copies each
 * block's output into the residual stream and keys/values into the KV cache). Outside a scope it is plain
 * `new Float32Array(n)`. Scopes nest: an inner scope returns only its own buffers.
 */

/** Buffers lent in the innermost active scope (null: no scope). */
let lent: Float32Array[] | null = null;
/** Free buffers by length. */
const pool = new Map<number, Float32Array[]>();
let pooledFloats = 0;
/** The pool is emptied (left to the GC) when it would hold more than this many floats (256 MB). */
const MAX_POOLED_FLOATS = 64 * 1024 * 1024;

/** A zeroed float32 array of n elements: from the pool inside a scope, else new. */
export function scratchF32(n: number): Float32Array {
  if (!lent) return new Float32Array(n);
  const buf = pool.get(n)?.pop();
  let out: Float32Array;
  if (buf) {
    pooledFloats -= n;
    buf.fill(0);
    out = buf;
  } else out = new Float32Array(n);
  lent.push(out);
  return out;
}

/** Runs fn with scratch allocation; everything lent meanwhile returns to the pool afterwards. */
export function withScratch<T>(fn: () => T): T {
  const outer = lent;
  const mine: Float32Array[] = [];
  lent = mine;
  try {
    return fn();
  } finally {
    lent = outer;
    for (const b of mine) {
      if (pooledFloats + b.length > MAX_POOLED_FLOATS) {
        pool.clear();
        pooledFloats = 0;
      }
      let list = pool.get(b.length);
      if (!list) pool.set(b.length, (list = []));
      list.push(b);
      pooledFloats += b.length;
    }
  }
}
