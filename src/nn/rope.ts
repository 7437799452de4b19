/**
 * Rotary-embedding tables as Hugging Face computes them (float32 arithmetic, mirrored with Math.fround):
 * inv_freq[i] = 1 / theta^(2i / headDim), optionally rescaled (`linear`, `llama3`), then for each position p
 * cos/sin of p · inv_freq[i]. Tables are (maxPositions, headDim/2); the rotate-half layout repeats them.
 */
import type { RopeTables } from '../tensor/nn-ops.ts';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface RopeOptions {
  headDim: number;
  maxPositions: number;
  theta: number;
  scaling?: RopeScaling | null;
}

const f = Math.fround;

/** inverse frequencies (headDim/2), float32-rounded like torch. */
export function inverseFrequencies(opts: RopeOptions): Float32Array {
  const half = opts.headDim / 2;
  if (!Number.isInteger(half) || half < 1) throw new Error(`rope: head dimension must be even, got ${opts.headDim}`);
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(opts.theta ** f(f(2 * i) / opts.headDim)));
  const s = opts.scaling;
  if (!s) return inv;
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i] / s.factor);
    return inv;
  }
  // llama3: long wavelengths are divided by `factor`, short ones kept, the band between interpolated.
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = inv[i];
    const wavelen = f((2 * Math.PI) / freq);
    let out = wavelen > lowWavelen ? f(freq / s.factor) : freq;
    if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
      const smooth = f((f(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
      out = f(f(f((1 - smooth) * out) / s.factor) + f(smooth * out));
    }
    inv[i] = out;
  }
  return inv;
}

export function ropeTables(opts: RopeOptions): RopeTables {
  const inv = inverseFrequencies(opts);
  const half = inv.length;
  const cos = new Float32Array(opts.maxPositions * half);
  const sin = new Float32Array(opts.maxPositions * half);
  for (let p = 0; p < opts.maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * inv[i]);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin, maxPositions: opts.maxPositions, headDim: opts.headDim };
}
