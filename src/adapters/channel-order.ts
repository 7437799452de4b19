/**
 * MLP channel orders: a permutation of each layer's intermediate channels, so that first-k slicing of the
 * elastic MLP width (spec.md §2) keeps the channels placed first (src/nas/importance.ts puts the most
 * important ones there).
 *
 *   order[l][k] = the channel of the base model on disk that sits at elastic position k of layer l
 *
 * Permuting is exact: the MLP is down(act(gate x) ⊙ up x), a sum over intermediate channels, so reordering
 * the rows of gate_proj and up_proj (weights, biases, their lora_B rows) and the columns of down_proj (and
 * its lora_A columns) together leaves the function unchanged. Only the in-memory model is permuted: the
 * base on disk is never touched, and adapters are saved in the base's own channel order (PEFT-compatible,
 * src/adapters/peft.ts) with the order recorded beside them so lonas permutes again when it loads them.
 */
import { Bf16Matrix, BitMask, Tensor } from '../tensor/index.ts';
import { LoraLinear } from './lora.ts';
import { ElasticLinear } from './elastic.ts';
import { QaSparsePeft, SparsePeft } from './sqft.ts';
import { Linear } from '../nn/modules.ts';
import type { LinearLike } from '../nn/modules.ts';
import { SparseLinear } from '../nn/sparse-linear.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';

/** Per layer, a permutation of 0 … intermediate_size − 1 (see the file comment). */
export type ChannelOrder = number[][];

/** Channels by descending score; ties keep the lower index first (deterministic). */
export function orderByScore(scores: ArrayLike<number>): number[] {
  const idx = Array.from({ length: scores.length }, (_, j) => j);
  return idx.sort((a, b) => scores[b] - scores[a] || a - b);
}

/** inv[p[k]] = k */
export function invertPermutation(p: readonly number[]): number[] {
  const inv = new Array<number>(p.length);
  p.forEach((v, k) => (inv[v] = k));
  return inv;
}

export function isIdentity(p: readonly number[]): boolean {
  return p.every((v, k) => v === k);
}

/**
 * Checks that `json` is one permutation per layer of the model's intermediate sizes. `source` names the
 * file and field for errors (e.g. `adapter/lonas_adapter.json: field "mlp_channel_order"`).
 */
export function validateChannelOrder(json: unknown, config: LlamaConfig, source: string): ChannelOrder {
  const n = config.layers.length;
  if (!Array.isArray(json))
    throw new Error(
      `${source}: expected an array with one channel order per layer (${n} layers), got ${JSON.stringify(json)?.slice(0, 40)}`,
    );
  if (json.length !== n) throw new Error(`${source}: has ${json.length} layer entries, the model has ${n} layers`);
  return json.map((p: unknown, l) => {
    const size = config.layers[l].intermediateSize;
    if (!Array.isArray(p)) throw new Error(`${source}[${l}]: expected an array of ${size} channel indices`);
    if (p.length !== size) throw new Error(`${source}[${l}]: has ${p.length} entries, layer ${l} has intermediate_size ${size}`);
    const seen = new Uint8Array(size);
    p.forEach((v: unknown, k) => {
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= size)
        throw new Error(`${source}[${l}][${k}]: ${JSON.stringify(v)} is not a channel index in 0…${size - 1}`);
      if (seen[v as number]++) throw new Error(`${source}[${l}]: channel ${v} appears twice (not a permutation)`);
    });
    return p as number[];
  });
}

/** (rows, cols) row-major: out[k, :] = data[perm[k], :] */
export function gatherRows<A extends Float32Array | Float64Array | Uint16Array | Uint8Array>(
  data: A,
  cols: number,
  perm: readonly number[],
): A {
  const out = data.slice() as A;
  perm.forEach((src, k) => out.set(data.subarray(src * cols, (src + 1) * cols), k * cols));
  return out;
}

/** (rows, cols) row-major: out[:, k] = data[:, perm[k]] */
export function gatherCols<A extends Float32Array | Float64Array | Uint16Array | Uint8Array>(
  data: A,
  cols: number,
  perm: readonly number[],
): A {
  if (perm.length !== cols) throw new Error(`gatherCols: permutation of ${perm.length} for ${cols} columns`);
  const out = data.slice() as A;
  const rows = data.length / cols;
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[r * cols + k] = data[r * cols + perm[k]];
  return out;
}

/**
 * The order of a model's in-memory MLP channels relative to the base it was loaded from (null: unchanged).
 * Kept beside the model (not in it) by permuteMlpChannels, so saving an adapter can always map it back to the
 * base's order — a caller cannot forget to.
 */
const orders = new WeakMap<LlamaModel, ChannelOrder>();

export function mlpChannelOrder(model: LlamaModel): ChannelOrder | null {
  return orders.get(model) ?? null;
}

/**
 * Permutes every layer's MLP channels in place: model' computes what model computes, with channel
 * order[l][k] of the current model at position k. Adapters already attached (LoRA B rows of gate/up, LoRA A
 * columns of down, SparsePEFT masks) move with their channels. GPTQ-quantised projections are refused
 * (their packed codes and group indices would have to move too).
 */
export function permuteMlpChannels(model: LlamaModel, order: ChannelOrder): void {
  if (order.length !== model.layers.length)
    throw new Error(`channel order has ${order.length} layers, the model has ${model.layers.length}`);
  model.layers.forEach((layer, l) => {
    const p = order[l];
    if (p.length !== model.config.layers[l].intermediateSize)
      throw new Error(
        `channel order of layer ${l} has ${p.length} entries, intermediate_size is ${model.config.layers[l].intermediateSize}`,
      );
    permuteLayerMlp(layer.proj, p, l);
  });
  // position k now holds current channel p[k], i.e. base channel before[p[k]]
  const before = orders.get(model);
  const total = before ? order.map((p, l) => p.map((c) => before[l][c])) : order.map((p) => p.slice());
  if (total.every(isIdentity)) orders.delete(model);
  else orders.set(model, total);
}

/** permuteMlpChannels for one layer `l` given its projections (e.g. while streaming layer by layer): channel p[k] moves to position k. */
export function permuteLayerMlp(proj: Record<ProjectionName, LinearLike>, p: readonly number[], l: number): void {
  if (isIdentity(p)) return;
  permuteOutputs(proj.gate_proj, p, `layer ${l} gate_proj`);
  permuteOutputs(proj.up_proj, p, `layer ${l} up_proj`);
  permuteInputs(proj.down_proj, p, `layer ${l} down_proj`);
}

/**
 * A LoRA's tensors in the base model's channel order (for saving): lora_B rows of gate/up and lora_A
 * columns of down_proj moved back by the inverse of `p` (the layer's order); other tensors unchanged.
 * A (r, in), B (out, r), fresh copies when moved.
 */
export function adapterInBaseOrder(m: LoraLinear, proj: ProjectionName, p: readonly number[] | undefined): { a: Tensor; b: Tensor } {
  if (!p || isIdentity(p)) return { a: m.loraA, b: m.loraB };
  const inv = invertPermutation(p);
  if (proj === 'gate_proj' || proj === 'up_proj')
    return { a: m.loraA, b: new Tensor(gatherRows(data(m.loraB), m.rMax, inv), m.loraB.shape) };
  if (proj === 'down_proj') return { a: new Tensor(gatherCols(data(m.loraA), m.loraA.shape[1], inv), m.loraA.shape), b: m.loraB };
  return { a: m.loraA, b: m.loraB };
}

/** The plain float base of a projection, or a clear error for forms whose storage cannot be permuted. */
function floatBase(m: LinearLike, what: string): Linear {
  const base = m instanceof LoraLinear ? m.base : m instanceof ElasticLinear ? m.stored : m;
  if (m instanceof LoraLinear && (m.variant instanceof QaSparsePeft || m.baseQuant))
    throw new Error(`reordering MLP channels: ${what} has a GPTQ-quantised base; reordering a quantised base is not supported`);
  if (base instanceof SparseLinear)
    throw new Error(`reordering MLP channels: ${what} already runs the sparse inference kernel; permute before useSparseKernels`);
  if (!(base instanceof Linear))
    throw new Error(`reordering MLP channels: ${what} is not a float Linear (a GPTQ-quantised base cannot be reordered)`);
  return base;
}

/** A new tensor with the same name and gradient flag (base weights may be shared with a loader's cache). */
function replaced(t: Tensor, data: Float32Array | Float64Array): Tensor {
  return new Tensor(data, t.shape, { name: t.name, requiresGrad: t.requiresGrad });
}

function data(t: Tensor): Float32Array | Float64Array {
  return t.contiguousData() as Float32Array | Float64Array;
}

/**
 * The base weight gathered by `gather` (rows or columns of the (out, in) array) in the form it is stored: a
 * bf16 weight's bits are moved, so it stays bf16.
 */
function permuteWeight(base: Linear, gather: <A extends Float32Array | Float64Array | Uint16Array>(d: A) => A): void {
  const bits = base.weightStore.bf16;
  base.weight = bits ? new Bf16Matrix(gather(bits.bits), bits.shape, bits.name) : replaced(base.weight, gather(data(base.weight)));
}

/** Output rows: W (out, in), bias (out), lora_B (out, r), mask (out, in). */
function permuteOutputs(m: LinearLike, p: readonly number[], what: string): void {
  const base = floatBase(m, what);
  const [, inF] = base.weightShape;
  permuteWeight(base, (d) => gatherRows(d, inF, p));
  if (base.bias) base.bias = replaced(base.bias, gatherRows(data(base.bias), 1, p));
  if (m instanceof LoraLinear) {
    m.loraB.data.set(gatherRows(data(m.loraB), m.rMax, p));
    if (m.variant instanceof SparsePeft) m.variant.mask = BitMask.pack(gatherRows(m.variant.mask.unpack(), inF, p));
  }
}

/** Input columns: W (out, in), lora_A (r, in), mask (out, in). */
function permuteInputs(m: LinearLike, p: readonly number[], what: string): void {
  const base = floatBase(m, what);
  const [, inF] = base.weightShape;
  permuteWeight(base, (d) => gatherCols(d, inF, p));
  if (m instanceof LoraLinear) {
    m.loraA.data.set(gatherCols(data(m.loraA), inF, p));
    if (m.variant instanceof SparsePeft) m.variant.mask = BitMask.pack(gatherCols(m.variant.mask.unpack(), inF, p));
  }
}
