/**
 * Layer-wise calibration, shared by every compression method (Wanda, GPTQ, …): calibration sequences run
 * through the model one decoder layer at a time; each layer's projections are observed (their inputs
 * handed to the method's statistics), the method compresses the layer, and the layer's outputs are then
 * recomputed with the compressed weights to become the next layer's inputs (spec.md §6).
 *
 * After the last layer, `headInput` (if given) sees the LM head's inputs: the final RMSNorm of the hidden
 * states the compressed layers produced.
 *
 * Observation wraps each projection module generically (any LinearLike, any architecture lonas loads), so
 * no module path is hard-coded. Sequences run one at a time (batch 1), as the reference implementations do.
 */
import { Tensor, noGrad, zeros } from '../tensor/index.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import { OUTPUT_ONLY_PROJECTIONS, PROJECTIONS } from '../models/llama/model.ts';

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
  /** called after every sequence went through layer i (statistics complete): compress the layer in place */
  compressLayer(layer: number): void;
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
      if (observer) {
        const original = { ...layer.proj };
        for (const p of PROJECTIONS) layer.proj[p] = new ObservedLinear(original[p], p, observer);
        try {
          hidden.forEach((h, k) => model.forwardLayer(i, h, positions[k]));
        } finally {
          for (const p of PROJECTIONS) layer.proj[p] = original[p];
        }
      }
      hooks.compressLayer(i);
      hidden = hidden.map((h, k) => model.forwardLayer(i, h, positions[k])); // inputs of the next layer, from the compressed layer
      hooks.stream?.leave(i);
      hooks.onProgress?.(i + 1, model.layers.length);
    }
    const headInput = hooks.headInput;
    if (headInput)
      for (const h of hidden) headInput(model.norm.forward(h).contiguousData() as Float32Array, h.shape[1], model.config.hiddenSize); // (1, T, C)
  });
}
