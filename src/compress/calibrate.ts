/**
 * Layer-wise calibration, shared by every compression method (Wanda, GPTQ, …): calibration sequences run
 * through the model one decoder layer at a time; each layer's projections are observed (their inputs
 * handed to the method's statistics), the method compresses the layer, and the layer's outputs are then
 * recomputed with the compressed weights to become the next layer's inputs (spec.md §6).
 *
 * After the last layer, `headInput` (if given) sees the LM head's inputs: the final RMSNorm of the hidden
 * states the compressed layers produced.
 *
 * Two orders (spec.md §6 leaves it open; the reference tools differ):
 *  - all at once (Wanda; GPTQ without true-sequential): every projection is observed on the uncompressed layer's
 *    inputs, the whole layer is compressed, and a second forward pass gives the next layer's inputs;
 *  - true-sequential (AutoGPTQ's and GPTQModel's default): the groups of SEQUENTIAL_GROUPS (q/k/v, o, gate/up,
 *    down) are observed and compressed one after another, each on the inputs the already-compressed groups produce.
 *    AutoGPTQ runs the whole layer once per group; here each projection's output is computed once, with its final
 *    weights, and replayed in the later passes (sequentialLayer), so a layer costs one forward pass of its
 *    projections, not two, and the attention is computed twice (for o_proj's input, then with the quantised o_proj).
 *
 * Observation wraps each projection module generically (any LinearLike, any architecture lonas loads), so
 * no module path is hard-coded. Sequences run one at a time (batch 1), as the reference implementations do.
 */
import { noGrad, zeros } from '../tensor/index.ts';
import type { Tensor } from '../tensor/index.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import { OUTPUT_ONLY_PROJECTIONS, PROJECTIONS, SEQUENTIAL_GROUPS } from '../models/llama/model.ts';

/** Receives the input x (tokens, in) of one projection for one calibration sequence. */
export type InputObserver = (proj: ProjectionName, x: Float32Array, tokens: number, inFeatures: number) => void;

/**
 * Layers put in and taken out one at a time (a checkpoint streamed layer by layer, compress/stream.ts):
 * `enter(i)` before layer i is first used, `leave(i)` once it is compressed and the next layer's inputs are computed.
 */
export interface LayerStream {
  enter(layer: number): void;
  leave(layer: number): void;
}

export interface LayerwiseHooks {
  /** called before layer i runs: return an observer for its projections (or null to skip observation) */
  beforeLayer(layer: number): InputObserver | null;
  /**
   * called once the statistics of `projections` of layer i are complete (every sequence went through): compress
   * them in place. All at once: every projection, once per layer; true-sequential: one SEQUENTIAL_GROUPS group at a time.
   */
  compressLayer(layer: number, projections: readonly ProjectionName[]): void;
  /** called once layer i is compressed and the next layer's inputs are computed (before `stream.leave(i)`) */
  afterLayer?(layer: number): void;
  /** observe and compress the projection groups one after another (see the header) */
  trueSequential?: boolean;
  /** called once per sequence after the last layer with the LM head's input x (tokens, C) = norm(h) */
  headInput?(x: Float32Array, tokens: number, inFeatures: number): void;
  onProgress?: (layer: number, layers: number) => void;
  /** when the model's layers are streamed */
  stream?: LayerStream;
}

/**
 * A projection that hands its input to the observer first. In the observation pass the layer's output is discarded,
 * so a projection whose output reaches only that output (OUTPUT_ONLY_PROJECTIONS: Llama's down_proj, a fifth of the
 * layer's multiply-adds) returns zeros instead of computing it.
 */
class ObservedLinear implements LinearLike {
  private readonly skipOutput: boolean;
  constructor(
    private readonly inner: LinearLike,
    private readonly name: ProjectionName,
    private readonly observe: InputObserver,
  ) {
    this.skipOutput = OUTPUT_ONLY_PROJECTIONS.includes(name);
  }
  get inFeatures() {
    return this.inner.inFeatures;
  }
  get outFeatures() {
    return this.inner.outFeatures;
  }
  forward(x: Tensor): Tensor {
    const d = x.contiguousData() as Float32Array;
    this.observe(this.name, d, d.length / this.inner.inFeatures, this.inner.inFeatures);
    return this.skipOutput ? zeros([...x.shape.slice(0, -1), this.inner.outFeatures]) : this.inner.forward(x);
  }
  trainable() {
    return this.inner.trainable();
  }
  baseTensors() {
    return this.inner.baseTensors();
  }
}

/** Thrown once a true-sequential pass has observed its whole group for a sequence: the rest of the layer is not needed. */
class PassComplete extends Error {}

/** The state of sequentialLayer's passes: the group observed, the sequence running, the outputs kept for replay. */
interface Pass {
  group: number;
  sequence: number;
  /** the projections of `group` observed for this sequence so far */
  observed: Set<ProjectionName>;
  outputs: Map<ProjectionName, Tensor[]>;
}

/**
 * A projection in one pass of sequentialLayer. Groups before the pass's return their output for the sequence running
 * (computed once with the group's final weights, then replayed: their inputs no longer change); the pass's group hands
 * its input to the observer and returns zeros (its output is computed in the next pass, once compressed), and the
 * last of them ends the pass (so does a later group, should a member of the pass's group not be reached).
 */
class StagedLinear implements LinearLike {
  constructor(
    private readonly inner: LinearLike,
    private readonly name: ProjectionName,
    private readonly group: number,
    private readonly pass: Pass,
    private readonly observe: InputObserver,
  ) {}
  get inFeatures() {
    return this.inner.inFeatures;
  }
  get outFeatures() {
    return this.inner.outFeatures;
  }
  forward(x: Tensor): Tensor {
    const { group, sequence, outputs } = this.pass;
    if (this.group < group) {
      const outs = outputs.get(this.name) ?? [];
      outputs.set(this.name, outs);
      const replay = outs[sequence];
      if (replay) return replay;
      const y = this.inner.forward(x);
      if (group < SEQUENTIAL_GROUPS.length) outs[sequence] = y; // the last pass needs no replay
      // o_proj's output replaces the attention block in the later passes: q/k/v's outputs are not read again
      if (this.name === 'o_proj') for (const p of SEQUENTIAL_GROUPS[0]) delete outputs.get(p)?.[sequence];
      return y;
    }
    if (this.group > group) throw new PassComplete();
    const d = x.contiguousData() as Float32Array;
    this.observe(this.name, d, d.length / this.inner.inFeatures, this.inner.inFeatures);
    this.pass.observed.add(this.name);
    if (SEQUENTIAL_GROUPS[group].every((p) => this.pass.observed.has(p))) throw new PassComplete(); // nothing after is needed
    return zeros([...x.shape.slice(0, -1), this.inner.outFeatures]);
  }
  trainable() {
    return this.inner.trainable();
  }
  baseTensors() {
    return this.inner.baseTensors();
  }
}

/**
 * True-sequential observation and compression of layer i (see the header); returns the next layer's inputs. One pass
 * per group over every sequence, then a last pass that computes only the last group's outputs. Holds each projection's
 * outputs for every sequence until the layer is done but the last group's, and q/k/v's only until o_proj's output is
 * kept (at the Llama-2-7B shape and 32 × 512 tokens: 1.7 GB at most, in the down_proj pass).
 */
function sequentialLayer(
  model: LlamaModel,
  i: number,
  hidden: Tensor[],
  positions: Int32Array[],
  observe: InputObserver,
  hooks: LayerwiseHooks,
): Tensor[] {
  const layer = model.layers[i];
  const pass: Pass = { group: 0, sequence: 0, observed: new Set(), outputs: new Map() };
  const groupOf = (p: ProjectionName) => SEQUENTIAL_GROUPS.findIndex((g) => g.includes(p));
  const run = (k: number) => {
    pass.sequence = k;
    pass.observed.clear();
    const current = { ...layer.proj };
    for (const p of PROJECTIONS) layer.proj[p] = new StagedLinear(current[p], p, groupOf(p), pass, observe);
    try {
      // once o_proj's output is kept it is the attention block's output: the later passes skip q/k/v, rope and attention
      return model.forwardLayer(i, hidden[k], positions[k], pass.outputs.get('o_proj')?.[k]);
    } catch (e) {
      if (e instanceof PassComplete) return null;
      throw e;
    } finally {
      for (const p of PROJECTIONS) layer.proj[p] = current[p];
    }
  };
  for (; pass.group < SEQUENTIAL_GROUPS.length; pass.group++) {
    hidden.forEach((_, k) => run(k));
    hooks.compressLayer(i, SEQUENTIAL_GROUPS[pass.group]);
  }
  return hidden.map((_, k) => run(k)!);
}

/** Runs the layer-wise loop over `samples` (each a token sequence, BOS included by the caller). */
export function calibrateLayerwise(model: LlamaModel, samples: Int32Array[], hooks: LayerwiseHooks): void {
  if (samples.length === 0) throw new Error('calibration needs at least one sample');
  noGrad(() => {
    let hidden: Tensor[] = samples.map((s) => model.embed.forward(s, [1, s.length])); // each (1, T, C)
    const positions = samples.map((s) => Int32Array.from({ length: s.length }, (_, i) => i));
    for (let i = 0; i < model.layers.length; i++) {
      hooks.stream?.enter(i);
      const observer = hooks.beforeLayer(i);
      const layer = model.layers[i];
      if (observer && hooks.trueSequential) hidden = sequentialLayer(model, i, hidden, positions, observer, hooks);
      else {
        if (observer) {
          const original = { ...layer.proj };
          for (const p of PROJECTIONS) layer.proj[p] = new ObservedLinear(original[p], p, observer);
          try {
            hidden.forEach((h, k) => model.forwardLayer(i, h, positions[k]));
          } finally {
            for (const p of PROJECTIONS) layer.proj[p] = original[p];
          }
        }
        hooks.compressLayer(i, PROJECTIONS);
        hidden = hidden.map((h, k) => model.forwardLayer(i, h, positions[k])); // inputs of the next layer, from the compressed layer
      }
      hooks.afterLayer?.(i);
      hooks.stream?.leave(i);
      hooks.onProgress?.(i + 1, model.layers.length);
    }
    const headInput = hooks.headInput;
    if (headInput)
      for (const h of hidden) headInput(model.norm.forward(h).contiguousData() as Float32Array, h.shape[1], model.config.hiddenSize); // (1, T, C)
  });
}
