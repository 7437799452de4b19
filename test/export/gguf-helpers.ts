/** Shared by the GGUF tests: lonas's next-token log-probabilities, compared with llama.cpp's. */
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { noGrad } from '../../src/tensor/index.ts';

/** lonas's log-softmax of the logits at every position of `ids`: (T, V). */
export function lonasLogProbs(m: LlamaModel, ids: number[]): Float64Array[] {
  const V = m.config.vocabSize;
  const logits = noGrad(() => m.forward(Int32Array.from(ids), 1, ids.length)).toArray();
  return ids.map((_, t) => {
    const row = logits.slice(t * V, (t + 1) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    return Float64Array.from(row, (x) => x - lse);
  });
}

export function maxAbsDiff(a: Float64Array[], b: Float64Array[]): number {
  let m = 0;
  a.forEach((row, t) =>
    row.forEach((x, v) => {
      m = Math.max(m, Math.abs(x - b[t][v]));
    }),
  );
  return m;
}

/** Mean over positions of KL(p ‖ q) for log-probability rows (nats). */
export function meanKl(p: Float64Array[], q: Float64Array[]): number {
  let sum = 0;
  p.forEach((row, t) =>
    row.forEach((lp, v) => {
      if (lp > -Infinity) sum += Math.exp(lp) * (lp - q[t][v]);
    }),
  );
  return sum / p.length;
}
