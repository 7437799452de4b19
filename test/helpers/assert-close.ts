import assert from 'node:assert/strict';

/** |a − e| ≤ atol + rtol·|e| elementwise; the message names the worst element. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  tol: { rtol?: number; atol?: number } = {},
): void {
  const rtol = tol.rtol ?? 1e-5,
    atol = tol.atol ?? 1e-6;
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs expected ${expected.length}`);
  let worst = -1,
    worstExcess = 0,
    maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= atol + rtol * Math.abs(expected[i]))) {
      const excess = Number.isNaN(err) ? Infinity : err - (atol + rtol * Math.abs(expected[i]));
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
    if (err > maxAbs) maxAbs = err;
  }
  assert.ok(
    worst < 0,
    `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol}; max abs err ${maxAbs})`,
  );
}

/** The relative L2 error ‖a − b‖₂ / ‖b‖₂ (b the reference). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
