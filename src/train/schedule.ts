/**
 * Learning-rate multiplier per optimizer step, as transformers' get_cosine_schedule_with_warmup:
 * linear warm-up from 0 over `warmup` steps, then cosine decay to 0 at `total` steps. The update of
 * step s (0-based) uses lr · factor(s).
 */
export function cosineWithWarmup(step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
