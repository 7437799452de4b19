/** Global gradient-norm clipping over several tensors (torch.nn.utils.clip_grad_norm_, L2). */
import type { Tensor } from '../tensor/index.ts';

/** Scales every gradient by min(1, maxNorm / (norm + 1e-6)) and returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.data;
    for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  }
  const norm = Math.sqrt(sq);
  if (!Number.isFinite(norm))
    throw new Error(`gradient norm is ${norm}: training diverged (lower --lr, or check the data for empty examples)`);
  const coef = maxNorm / (norm + 1e-6);
  if (maxNorm > 0 && coef < 1) {
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.data;
      for (let i = 0; i < g.length; i++) g[i] *= coef;
    }
  }
  return norm;
}
