/** Scalar rounding shared by every layer (this folder imports nothing). */

/** Rounds half to even, as torch.round and numpy.round do (2.5 → 2, 3.5 → 4, −2.5 → −2). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
