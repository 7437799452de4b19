/** Statistics of the accuracy figures. */

/** z for a two-sided 95% interval (Φ⁻¹(0.975)). */
const Z95 = 1.959963984540054;

/**
 * Wilson score interval for `correct` successes out of `n` (95% by default): unlike the normal
 * approximation it stays inside [0, 1] and is not degenerate at 0% or 100%. n = 0 gives [0, 1].
 */
export function wilson(correct: number, n: number, z = Z95): [number, number] {
  if (n === 0) return [0, 1];
  if (!(correct >= 0 && correct <= n)) throw new Error(`wilson: ${correct} successes out of ${n}`);
  const p = correct / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // exact at the ends (rounding could put 1 just above 1 − half etc.)
  return [correct === 0 ? 0 : Math.max(0, center - half), correct === n ? 1 : Math.min(1, center + half)];
}
