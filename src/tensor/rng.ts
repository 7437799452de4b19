/**
 * Seeded random numbers for everything random in lonas (init, dropout, sampling, subnet draws).
 * xoshiro128** (32-bit state words, fast in JS), seeded through splitmix32 so that nearby seeds give
 * unrelated streams. The state is plain data so that checkpoints can save and restore it exactly.
 */
import { xoshiro128ss } from '../util/xoshiro.ts';

export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private readonly s = new Uint32Array(4);
  private spareNormal: number | null = null;

  constructor(seed: number | RngState) {
    if (Array.isArray(seed)) {
      this.s.set(seed);
    } else {
      if (!Number.isInteger(seed)) throw new Error(`Rng seed must be an integer, got ${seed}`);
      const next = splitmix32(seed);
      this.s.set([next(), next(), next(), next()]);
    }
  }

  /** A new generator whose stream depends only on this one's seed state and `label` (does not advance this one). */
  derive(label: string): Rng {
    let h = 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
    const next = splitmix32((this.s[0] ^ this.s[2] ^ h) >>> 0);
    return new Rng([next() ^ this.s[1], next() ^ this.s[3], next(), next()].map((x) => x >>> 0) as RngState);
  }

  getState(): RngState {
    if (this.spareNormal !== null) {
      // Keep save/restore exact: drop the cached Box-Muller half (the next normal() draws afresh).
      this.spareNormal = null;
    }
    return [...this.s] as RngState;
  }

  /** Copies the 4 state words to words[at..at+3] (for a kernel that draws this stream's next uint32s; see readWords). */
  writeWords(words: Uint32Array, at: number): void {
    words.set(this.s, at);
  }

  /** Continues from the 4 state words at words[at..at+3] that a kernel advanced (the cached Box–Muller half stays). */
  readWords(words: Uint32Array, at: number): void {
    this.s.set(words.subarray(at, at + 4));
  }

  /** An independent generator at exactly this one's position (cached Box–Muller half included). */
  clone(): Rng {
    const r = new Rng([...this.s] as RngState);
    r.spareNormal = this.spareNormal;
    return r;
  }

  /** Moves this generator to exactly `other`'s position (the objects sharing this one see the change). */
  copyFrom(other: Rng): void {
    this.s.set(other.s);
    this.spareNormal = other.spareNormal;
  }

  /** Continues from a saved state (see getState). */
  setState(state: RngState): void {
    this.s.set(state);
    this.spareNormal = null;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    return xoshiro128ss(this.s, 0);
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`Rng.int needs a positive integer bound, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}
