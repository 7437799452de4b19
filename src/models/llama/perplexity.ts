/** Perplexity of a token sequence under a causal LM. */
import { noGrad } from '../../tensor/index.ts';
import { causalLmLoss } from './loss.ts';
import type { LlamaModel } from './model.ts';

export interface PerplexityResult {
  /** number of predicted tokens (every token after the first of each window) */
  tokens: number;
  /** mean negative log-likelihood per predicted token (nats) */
  nll: number;
  ppl: number;
}

/**
 * Scores ids in non-overlapping windows of the model's context length (a text longer than the context
 * is scored window by window, each window without the previous one's context — a standard approximation,
 * stated here because it raises the NLL slightly compared with a sliding window).
 */
export function perplexity(model: LlamaModel, ids: number[], window = model.config.maxPositions): PerplexityResult {
  if (ids.length < 2) throw new Error(`perplexity needs at least 2 tokens (BOS + one token), got ${ids.length}`);
  let totalNll = 0,
    count = 0;
  for (let start = 0; start < ids.length - 1; start += window) {
    const chunk = ids.slice(start, start + window);
    if (chunk.length < 2) break;
    const loss = noGrad(() => causalLmLoss(model.forward(Int32Array.from(chunk), 1, chunk.length), Int32Array.from(chunk)));
    totalNll += loss.item() * (chunk.length - 1);
    count += chunk.length - 1;
  }
  const nll = totalNll / count;
  return { tokens: count, nll, ppl: Math.exp(nll) };
}
