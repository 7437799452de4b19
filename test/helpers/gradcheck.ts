/**
 * Float64 finite-difference gradient check: compares backward() against central differences of
 * L = Σ f(inputs) ⊙ R for a fixed random R, perturbing every element of every input.
 */
import assert from 'node:assert/strict';
import { Rng, type Tensor, backward, mul, sum, tensor } from '../../src/tensor/index.ts';

export function randn(rng: Rng, shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, () => rng.normal() * scale);
  return tensor(v, shape, 'f64');
}

export function leaf(t: Tensor): Tensor {
  t.requiresGrad = true;
  return t;
}

export function gradcheck(
  name: string,
  inputs: Tensor[],
  f: (...xs: Tensor[]) => Tensor,
  opts: { eps?: number; tol?: number; seed?: number } = {},
): void {
  const eps = opts.eps ?? 1e-6;
  const tol = opts.tol ?? 1e-6;
  for (const x of inputs) {
    assert.equal(x.dtype, 'f64', `${name}: gradcheck inputs must be float64`);
    x.requiresGrad = true;
    x.grad = null;
  }
  const out0 = f(...inputs);
  const weights = randn(new Rng(opts.seed ?? 7), [...out0.shape]);
  const loss = (o: Tensor) => sum(mul(o, weights));
  backward(loss(out0));
  inputs.forEach((x, xi) => {
    assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
    const analytic = x.grad!.toArray();
    for (let i = 0; i < x.size; i++) {
      const orig = x.data[i];
      x.data[i] = orig + eps;
      const plus = loss(f(...inputs)).item();
      x.data[i] = orig - eps;
      const minus = loss(f(...inputs)).item();
      x.data[i] = orig;
      const numeric = (plus - minus) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]);
      assert.ok(
        err <= tol * Math.max(1, Math.abs(numeric)),
        `${name}: d/dinput${xi}[${i}] analytic ${analytic[i]} vs numeric ${numeric} (err ${err})`,
      );
    }
  });
}
