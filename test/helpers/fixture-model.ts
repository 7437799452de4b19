/** A LlamaModel from a golden fixture: its `config` metadata is an HF config.json, its weights `param.<HF name>`. */
import { Tensor } from '../../src/tensor/index.ts';
import type { SafetensorsFile } from '../../src/io/safetensors.ts';
import { parseHfConfig } from '../../src/models/llama/hf-config.ts';
import { LlamaModel } from '../../src/models/llama/model.ts';

export function fixtureModel(fx: SafetensorsFile, opts: { trainable?: boolean } = {}): LlamaModel {
  const config = parseHfConfig({ model_type: 'llama', ...JSON.parse(fx.metadata.config) }, `${fx.path} (config metadata)`);
  const weights = new Map<string, Tensor>();
  for (const name of fx.entries.keys()) {
    if (!name.startsWith('param.')) continue;
    const { data, shape } = fx.readFloat32(name);
    weights.set(name.slice('param.'.length), new Tensor(data, shape, { requiresGrad: !!opts.trainable }));
  }
  return new LlamaModel({ ...config, maxPositions: 64 }, weights);
}
