/**
 * Which kernels multiplied by stored weights, as they run: each weight product (a Linear's x·Wᵀ, an adapter's
 * A and B, the LM head) notes its kernel while a tally is open, so `lonas bench` reports what it timed rather
 * than what the model's storage suggests.
 *
 *   f32     float32 weight (sgemm or the small-M kernel)
 *   bf16    bfloat16 weight widened exactly in the kernel (gemmBf16)
 *   int4    GPTQ codes (the INT4 kernel)
 *   sparse  bitmask-sparse weight (the sparse kernel)
 */
export const WEIGHT_KERNELS = ['f32', 'bf16', 'int4', 'sparse'] as const;
export type WeightKernel = (typeof WEIGHT_KERNELS)[number];
export type WeightKernelCalls = Partial<Record<WeightKernel, number>>;

let open: Record<WeightKernel, number> | null = null;

/** Called by every weight product; a no-op unless `tallyWeightKernels` is running. */
export function noteWeightKernel(k: WeightKernel): void {
  if (open) open[k]++;
}

/** Runs `fn` and returns, with its result, how many weight products each kernel ran (kernels that did not run are left out). */
export function tallyWeightKernels<T>(fn: () => T): { result: T; calls: WeightKernelCalls } {
  if (open) throw new Error('tallyWeightKernels: a tally is already open (they do not nest)');
  const counts = Object.fromEntries(WEIGHT_KERNELS.map((k) => [k, 0])) as Record<WeightKernel, number>;
  open = counts;
  try {
    const result = fn();
    return { result, calls: Object.fromEntries(WEIGHT_KERNELS.filter((k) => counts[k] > 0).map((k) => [k, counts[k]])) };
  } finally {
    open = null;
  }
}
