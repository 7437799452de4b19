/**
 * Reverse-mode autograd: forward ops `record` a node on the output tensor; `backward` walks the nodes
 * in reverse topological order and applies the op's vector-Jacobian rule from the single table in
 * `vjp.ts`, which the compiler checks is complete for every op named in `OpSaved`.
 *
 * Gradients flow only where needed: an op records nothing when no input requires a gradient (frozen base
 * weights, no-grad mode), and each rule receives `wants[i]` so it skips work for inputs that need no
 * gradient (a frozen weight costs no weight-gradient GEMM).
 */
import type { FloatArray } from '../kernels/api.ts';
import { kernelsFor } from '../kernels/index.ts';
import { Tensor, fmtShape, sameShape } from './tensor.ts';
import { vjpRules } from './vjp.ts';
import { releaseScratch } from './scratch.ts';
import type { OpName, OpSaved } from './op-types.ts';

export interface TapeNode {
  op: OpName;
  /** The op's differentiable inputs, in the order its rule returns gradients. */
  inputs: readonly GradInput[];
  saved: unknown;
}

/**
 * A recorded op's handle on an input that has a producer: its node, shape and identity only. Holding the tensor
 * itself would keep every intermediate buffer alive until backward (the base product and the scaled update a LoRA
 * sum adds, say), although the rules read only what their op saved; so a buffer now lives in the graph only when an
 * op saved it, and the training activations are those of the saved tensors (src/train/memory.ts).
 */
export interface GradRef {
  node: TapeNode | null;
  readonly shape: readonly number[];
  readonly requiresGrad: boolean;
}

/** An input as the graph holds it: a leaf (a Tensor, whose `.grad` backward fills) or the handle of an intermediate (or of a constant). */
export type GradInput = Tensor | GradRef;

const isLeaf = (t: GradInput): t is Tensor => t instanceof Tensor;

/** What a node keeps of an input: leaves themselves, intermediates by handle, and inputs that need no gradient by shape only. */
export function graphInput(t: Tensor): GradInput {
  if (t.node) return t.gradRef();
  return t.requiresGrad ? t : { node: null, shape: t.shape, requiresGrad: false };
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording operations (inference, evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs `fn` recording operations, also inside noGrad (the recomputation of a checkpoint, checkpoint.ts). */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op over these inputs must be recorded. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/** Records `op` as the producer of `out` (no-op when no input needs a gradient). Returns `out`. */
export function record<K extends OpName>(op: K, inputs: readonly Tensor[], saved: OpSaved[K], out: Tensor): Tensor {
  if (!needsGrad(...inputs)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs: inputs.map(graphInput), saved };
  return out;
}

/**
 * Back-propagates from `root` (a scalar unless `gradOutput` is given) and ADDS into `.grad` of every leaf
 * with requiresGrad (so calling it for several micro-batches accumulates). The graph is released.
 */
export function backward(root: Tensor, gradOutput?: Tensor): void {
  if (!root.requiresGrad) throw new Error('backward(): this tensor does not require a gradient (no trainable input reached it)');
  if (!gradOutput && root.size !== 1) {
    throw new Error(`backward(): the root has shape ${fmtShape(root.shape)}; pass a gradient of that shape or reduce to a scalar`);
  }
  if (gradOutput && !sameShape(gradOutput.shape, root.shape)) {
    throw new Error(`backward(): gradient shape ${fmtShape(gradOutput.shape)} does not match ${fmtShape(root.shape)}`);
  }
  const seed = gradOutput ?? new Tensor(root.dtype === 'f64' ? new Float64Array(1).fill(1) : new Float32Array(1).fill(1), root.shape);
  const start = root.node ? root.gradRef() : root;
  const order = topoOrder(start);
  // Gradients of intermediates (by their handles); `owned` means the engine may add into the buffer in place.
  const pending = new Map<GradInput, { g: Tensor; owned: boolean }>();
  pending.set(start, { g: seed, owned: false });

  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    const node = t.node!;
    const entry = pending.get(t);
    pending.delete(t);
    t.node = null; // release the graph as we go (like PyTorch without retain_graph)
    if (!entry) continue;
    const wants = node.inputs.map((x) => x.requiresGrad);
    const rule = vjpRules[node.op] as (saved: unknown, gy: Tensor, wants: boolean[]) => (Tensor | null)[];
    const grads = rule(node.saved, entry.g, wants);
    node.inputs.forEach((input, j) => {
      const g = grads[j];
      if (!wants[j] || !g) return;
      if (!sameShape(g.shape, input.shape)) {
        throw new Error(`internal: VJP of '${node.op}' gave input ${j} a gradient ${fmtShape(g.shape)} for shape ${fmtShape(input.shape)}`);
      }
      // A buffer the rule allocated for this input alone may be kept without a copy; one passed through
      // (add, reshape, contiguous hand on the incoming gradient) or shared between inputs may not.
      const fresh =
        g.data.buffer !== entry.g.data.buffer &&
        grads.every((o, k) => k === j || !o || o.data.buffer !== g.data.buffer) &&
        g.isContiguous &&
        g.offset === 0 &&
        g.data.length === g.size;
      if (input.node) accumulatePending(pending, input, g, fresh);
      else if (isLeaf(input)) accumulateLeaf(input, g, fresh);
    });
    // this node's incoming gradient is dead once its rule ran, if the engine owns it and no result passes it on
    if (entry.owned && grads.every((o) => !o || o.data.buffer !== entry.g.data.buffer)) release(entry.g);
  }
}

/** Hands a gradient buffer the engine owns and no longer needs back to the scratch pool (float32 only). */
function release(g: Tensor): void {
  if (g.data instanceof Float32Array) releaseScratch(g.data);
}

/**
 * Bytes of activation memory the graph behind `root` holds until backward releases it: every distinct buffer of the
 * tensors it reaches (root, the ops' inputs and the tensors they saved) and of the typed arrays the ops saved, except
 * the buffers of `params` (the weights and adapters, and so the views of them). What the training memory estimate
 * (src/train/memory.ts) is checked against.
 */
export function graphBytes(root: Tensor, params: Iterable<Tensor>): number {
  const excluded = new Set<ArrayBufferLike>();
  for (const p of params) excluded.add(p.data.buffer);
  const held = new Set<ArrayBufferLike>();
  const seen = new Set<GradInput>();
  const stack: GradInput[] = [root];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (isLeaf(t)) held.add(t.data.buffer);
    const node = t.node;
    if (!node) continue;
    stack.push(...node.inputs);
    for (const v of Object.values(node.saved as object)) {
      if (v instanceof Tensor) stack.push(v);
      else if (ArrayBuffer.isView(v)) held.add(v.buffer);
    }
  }
  let bytes = 0;
  for (const b of held) if (!excluded.has(b)) bytes += b.byteLength;
  return bytes;
}

function topoOrder(root: GradInput): GradInput[] {
  const order: GradInput[] = [];
  const visited = new Set<GradInput>();
  const stack: [GradInput, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, next] = top;
    const inputs = t.node!.inputs;
    if (next < inputs.length) {
      top[1]++;
      const child = inputs[next];
      if (child.node && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

function accumulatePending(pending: Map<GradInput, { g: Tensor; owned: boolean }>, t: GradInput, g: Tensor, fresh: boolean): void {
  const prev = pending.get(t);
  if (!prev) {
    pending.set(t, { g, owned: fresh });
    return;
  }
  if (!prev.owned) {
    prev.g = copyOf(prev.g);
    prev.owned = true;
  }
  addInto(prev.g.data, g.contiguousData());
  if (fresh) release(g); // summed in: a buffer made for this input alone is dead
}

function accumulateLeaf(leaf: Tensor, g: Tensor, fresh: boolean): void {
  if (leaf.grad === null) leaf.grad = fresh ? g : copyOf(g);
  else {
    addInto(leaf.grad.data, g.contiguousData());
    if (fresh) release(g);
  }
}

function copyOf(t: Tensor): Tensor {
  const src = t.contiguousData();
  const data = src instanceof Float64Array ? new Float64Array(src) : new Float32Array(src);
  return new Tensor(data, t.shape);
}

function addInto(dst: FloatArray, src: FloatArray): void {
  kernelsFor(src instanceof Float64Array ? src : dst).addScaled(dst, src, dst, dst.length, 1); // float64 on either side: the reference
}

/** Clears `.grad` of the given leaves (start of an optimizer step). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) p.grad = null;
}
