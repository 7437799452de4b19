/**
 * The dropout kernels' TypeScript twins (the oracle of native/dropout.cc and the float64 path): one 32-bit
 * xoshiro128** draw per element (src/util/xoshiro.ts), rows drawn from their own streams.
 */
import type { FloatArray } from './api.ts';
import { need } from './checks.ts';
import { xoshiro128ss } from '../util/xoshiro.ts';

export function dropout(
  x: FloatArray,
  out: FloatArray,
  keep: Uint8Array,
  n: number,
  states: Uint32Array,
  rows: number,
  threshold: number,
  scale: number,
): void {
  if (rows < 1 || n % rows !== 0) throw new RangeError(`dropout: ${n} elements do not split into ${rows} rows`);
  need('dropout', 'states', states, 4 * rows);
  need('dropout', 'x', x, n);
  need('dropout', 'out', out, n);
  need('dropout', 'keep', keep, n);
  const block = n / rows;
  for (let b = 0; b < rows; b++) {
    for (let i = b * block; i < (b + 1) * block; i++) {
      const kept = xoshiro128ss(states, 4 * b) >= threshold;
      keep[i] = kept ? 1 : 0;
      out[i] = kept ? x[i] * scale : 0;
    }
  }
}

export function dropoutBackward(dy: FloatArray, keep: Uint8Array, dx: FloatArray, n: number, scale: number): void {
  need('dropoutBackward', 'dy', dy, n);
  need('dropoutBackward', 'keep', keep, n);
  need('dropoutBackward', 'dx', dx, n);
  for (let i = 0; i < n; i++) dx[i] = keep[i] ? dy[i] * scale : 0;
}
