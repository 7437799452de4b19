/**
 * Reused float32 buffers. A decode step of a batch of 8 allocated ~10 MB of short-lived arrays, a packed
 * prefill ~25 MB per layer and a training micro-batch of the 135M shape (2 × 256 tokens) ~0.6 GB of gradients;
 * V8 answers every ~64 MB of fresh array memory with a full garbage collection (~20 ms each here), and every
 * fresh page costs a kernel fault and its zeroing.
 *
 * Two ways a buffer comes back to the pool, from which `scratchF32(n)` (and so every op's output through
 * allocLike) lends it again, zeroed:
 *  - scopes: inside `withScratch(fn)` every buffer lent goes back when fn returns, so the caller must not keep
 *    anything allocated inside the scope: only copies may leave it (the model's layer loop copies each block's
 *    output into the residual stream and keys/values into the KV cache). Scopes nest: an inner scope returns
 *    only its own buffers.
 *  - `releaseScratch(buf)`: the owner knows nothing else refers to buf (autograd's backward, for a gradient it
 *    created and has consumed). Inside or outside a scope.
 * With an empty pool, outside a scope, it is plain `new Float32Array(n)`.
 */

/** Buffers lent by each active scope, innermost last. */
const scopes: Set<Float32Array>[] = [];
/** Free buffers by length. */
const pool = new Map<number, Float32Array[]>();
let pooledFloats = 0;
/** The pool's default bound in bytes (256 MB; the fine-tuning memory estimate counts it, src/train/memory.ts). */
export const SCRATCH_POOL_BYTES = 256 * 2 ** 20;
/** The pool holds at most this many floats; a buffer returned to a full pool is left to the GC. */
let maxPooledFloats = SCRATCH_POOL_BYTES / 4;
/** Buffers handed back through releaseScratch so far (what the tests check the pool is used by). */
let releases = 0;
/** Test hook: returned buffers are filled with NaN, so a read after release shows up instead of reading old numbers. */
let poison = false;

/** A zeroed float32 array of n elements: from the pool when it has one of that length, else new. */
export function scratchF32(n: number): Float32Array {
  return lend(n, true);
}

/**
 * Like scratchF32, not zeroed: for an output whose every element the caller writes before anything reads it
 * (a kernel's full output, a gemm with beta 0). Zeroing was ~0.4 s of a 2.3 s fine-tuning step (135M shape,
 * 4 × 128 tokens: ~3.9 GB of outputs a step). Fresh memory comes from Buffer.allocUnsafeSlow (not zero-filled);
 * with the poison hook on, every buffer lent is NaN, so an element read before it was written shows up.
 */
export function scratchF32Out(n: number): Float32Array {
  return lend(n, false);
}

/** A pooled buffer of n floats, or a new one; zeroed, or (not zeroed) NaN under the poison hook. */
function lend(n: number, zeroed: boolean): Float32Array {
  let out = pool.get(n)?.pop();
  if (out) {
    pooledFloats -= n;
    if (zeroed) out.fill(0);
  } else if (zeroed) out = new Float32Array(n);
  else {
    const bytes = Buffer.allocUnsafeSlow(4 * n);
    out = new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }
  if (poison && !zeroed) out.fill(Number.NaN);
  scopes[scopes.length - 1]?.add(out);
  return out;
}

function toPool(b: Float32Array): void {
  if (poison) b.fill(Number.NaN);
  if (pooledFloats + b.length > maxPooledFloats) return;
  let list = pool.get(b.length);
  if (!list) {
    list = [];
    pool.set(b.length, list);
  }
  list.push(b);
  pooledFloats += b.length;
}

/** Returns a buffer nothing refers to any more (the caller's promise) to the pool, whoever allocated it. */
export function releaseScratch(buf: Float32Array): void {
  for (let s = scopes.length - 1; s >= 0; s--) if (scopes[s].delete(buf)) break;
  releases++;
  toPool(buf);
}

/** Runs fn with scratch allocation; everything lent meanwhile returns to the pool afterwards. */
export function withScratch<T>(fn: () => T): T {
  const mine = new Set<Float32Array>();
  scopes.push(mine);
  try {
    return fn();
  } finally {
    scopes.pop();
    for (const b of mine) toPool(b);
  }
}

/** Test hook: fill buffers with NaN as they return to the pool (see `poison`). */
export function setScratchPoison(on: boolean): void {
  poison = on;
}

/** Test hook: the pool's size in floats (0 turns pooling off and empties it). Returns the previous limit. */
export function setScratchPoolLimit(floats: number): number {
  const prev = maxPooledFloats;
  maxPooledFloats = floats;
  if (floats === 0) {
    pool.clear();
    pooledFloats = 0;
  }
  return prev;
}

/** Test hook: how many buffers releaseScratch has taken back. */
export function scratchReleases(): number {
  return releases;
}
