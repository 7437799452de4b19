/** Scalar rounding shared by every layer (this folder imports nothing). */

/** Rounds half to even, as torch.round and numpy.round do (2.5 → 2, 3.5 → 4, −2.5 → −2). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The integer code of w on a quantisation grid: clamp(round(w / scale) + zero, 0, maxq), rounding half to even as torch. */
export function quantCode(w: number, scale: number, zero: number, maxq: number): number {
  return Math.min(maxq, Math.max(0, roundHalfEven(w / scale) + zero));
}
