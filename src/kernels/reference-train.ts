/**
 * The TypeScript twins of the training step's element-wise kernels (the oracle of native/dropout.cc and the
 * float64 path): dropout, one 32-bit xoshiro128** draw per element (src/util/xoshiro.ts), rows drawn from their
 * own streams; its backward; the scaled sum the ops add, scale and gradient accumulation use.
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

export function addScaled(a: FloatArray | null, b: FloatArray, out: FloatArray, n: number, s: number): void {
  need('addScaled', 'b', b, n);
  need('addScaled', 'out', out, n);
  // the product rounded to out's precision before the sum, as add(a, scale(b, s)) stores it
  const round = out instanceof Float32Array ? Math.fround : (x: number) => x;
  if (!a) for (let i = 0; i < n; i++) out[i] = b[i] * s;
  else {
    need('addScaled', 'a', a, n);
    for (let i = 0; i < n; i++) out[i] = a[i] + round(b[i] * s);
  }
}
