/** A small random Llama for unit tests (seeded), built in memory. */
import { type Tensor, Rng } from '../../src/tensor/index.ts';
import { LlamaModel } from '../../src/models/llama/model.ts';
import { uniformConfig } from '../../src/models/llama/config.ts';
import type { LlamaConfig } from '../../src/models/llama/config.ts';
import { llamaWeightTable } from '../../src/models/llama/weights.ts';
import { randomNormal } from '../../src/nn/modules.ts';

export function tinyConfig(over: Partial<Parameters<typeof uniformConfig>[0]> = {}): LlamaConfig {
  return uniformConfig({
    vocabSize: 40,
    hiddenSize: 16,
    headDim: 4,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 24,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 64,
    tieWordEmbeddings: false,
    attentionBias: false,
    ...over,
  });
}

export function tinyModel(seed = 1, config = tinyConfig()): LlamaModel {
  const rng = new Rng(seed);
  const weights = new Map<string, Tensor>();
  const c = config;
  for (const { name, shape } of llamaWeightTable(c).all) {
    weights.set(
      name,
      name.endsWith('norm.weight') ? randomNormal(rng, shape, 0.1) : randomNormal(rng, shape, name.includes('embed') ? 0.5 : 0.2),
    );
    if (name.endsWith('norm.weight')) weights.get(name)!.data.forEach((v, i, a) => (a[i] = 1 + v));
  }
  return new LlamaModel(c, weights);
}
