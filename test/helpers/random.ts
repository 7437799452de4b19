/** Seeded random data for kernel tests, from the project's own Rng. */
import { Rng } from '../../src/tensor/rng.ts';

/** A seeded uniform [0, 1) source. */
export function seededUniform(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.uniform();
}

/** n values uniform in [−scale, scale). */
export function randF32(rng: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng() * 2 - 1) * scale;
  return a;
}
