/**
 * Activation checkpointing (gradient checkpointing, as torch.utils.checkpoint): `checkpoint(f, x, rngs)` computes
 * y = f(x) and keeps only x; f's intermediate tensors are released as soon as it returns. When backward reaches y,
 * f(x) is computed again under autograd and the gradient is back-propagated through that recomputation, adding
 * into the leaves f uses (its trainable parameters) and giving x its gradient.
 *
 * The gradients are bit-identical to those of the plain graph: f runs the same kernels on the same inputs (x keeps
 * its requiresGrad, so every op takes the same path), the recomputation's tape visits f's ops in the order the
 * whole graph's tape did, and the random generators f draws from (`rngs`: dropout's streams) are put back at the
 * position they had when f first ran, then returned to where they were, so the same masks are drawn again and the
 * streams continue as if f had run once. Memory: per call, x instead of all of f's activations; time: f runs twice.
 */
import { Tensor } from './tensor.ts';
import { backward, graphInput, isGradEnabled, withGrad } from './autograd.ts';
import type { Rng } from './rng.ts';

/** y = f(x), recomputed in backward (see above). `f` must depend only on x, its own parameters and `rngs`. */
export function checkpoint(f: (x: Tensor) => Tensor, x: Tensor, rngs: readonly Rng[] = []): Tensor {
  if (!isGradEnabled()) return f(x);
  const start = rngs.map((r) => r.clone());
  const y = f(x);
  if (!y.requiresGrad) return y; // nothing in f needs a gradient: there is no graph to drop
  // the same values without f's graph: what f kept for its backward is garbage from here on
  const out = new Tensor(y.data, y.shape, { strides: y.strides, offset: y.offset, requiresGrad: true });
  const replay = (gy: Tensor, wants: boolean[]): (Tensor | null)[] => {
    const now = rngs.map((r) => r.clone());
    rngs.forEach((r, i) => r.copyFrom(start[i]));
    const xr = new Tensor(x.data, x.shape, { strides: x.strides, offset: x.offset, requiresGrad: x.requiresGrad });
    try {
      backward(
        withGrad(() => f(xr)),
        gy,
      );
    } finally {
      rngs.forEach((r, i) => r.copyFrom(now[i]));
    }
    return [wants[0] ? xr.grad : null];
  };
  out.node = { op: 'checkpoint', inputs: [graphInput(x)], saved: { x, replay } };
  return out;
}
