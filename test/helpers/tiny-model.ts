/** A small random Llama for unit tests (seeded), built in memory. */
import { Tensor, Rng } from '../../src/tensor/index.ts';
import { LlamaModel } from '../../src/models/llama/model.ts';
import { uniformConfig } from '../../src/models/llama/config.ts';
import type { LlamaConfig } from '../../src/models/llama/config.ts';
import { expectedTensorNames } from '../../src/models/llama/checkpoint.ts';
import { randomNormal } from '../../src/nn/modules.ts';

export function tinyConfig(over: Partial<Parameters<typeof uniformConfig>[0]> = {}): LlamaConfig {
  return uniformConfig({
    vocabSize: 40, hiddenSize: 16, headDim: 4, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 24,
    rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositions: 64, tieWordEmbeddings: false, attentionBias: false, ...over,
  });
}

export function tinyModel(seed = 1, config = tinyConfig()): LlamaModel {
  const rng = new Rng(seed);
  const weights = new Map<string, Tensor>();
  const c = config;
  for (const name of expectedTensorNames(c)) {
    const shape = shapeOf(name, c);
    weights.set(name, name.endsWith('norm.weight') ? randomNormal(rng, shape, 0.1) : randomNormal(rng, shape, name.includes('embed') ? 0.5 : 0.2));
    if (name.endsWith('norm.weight')) weights.get(name)!.data.forEach((v, i, a) => (a[i] = 1 + v));
  }
  return new LlamaModel(c, weights);
}

function shapeOf(name: string, c: LlamaConfig): number[] {
  const C = c.hiddenSize, D = c.headDim;
  const m = name.match(/layers\.(\d+)\./);
  const l = m ? c.layers[Number(m[1])] : c.layers[0];
  if (name.includes('embed_tokens') || name === 'lm_head.weight') return [c.vocabSize, C];
  if (name.endsWith('norm.weight')) return [C];
  if (name.includes('q_proj')) return name.endsWith('bias') ? [l.numHeads * D] : [l.numHeads * D, C];
  if (name.includes('k_proj') || name.includes('v_proj')) return name.endsWith('bias') ? [l.numKvHeads * D] : [l.numKvHeads * D, C];
  if (name.includes('o_proj')) return [C, l.numHeads * D];
  if (name.includes('gate_proj') || name.includes('up_proj')) return [l.intermediateSize, C];
  if (name.includes('down_proj')) return [C, l.intermediateSize];
  throw new Error(`tiny model: unknown tensor ${name}`);
}
