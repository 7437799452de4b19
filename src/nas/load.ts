/** Loading a base model with an (elastic) adapter and a sub-network configuration active. */
import { loadLlama } from '../models/llama/checkpoint.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { loadAdapter } from '../adapters/peft.ts';
import type { LoraSettings } from '../adapters/peft.ts';
import { PRESETS, resolveSearchSpace } from './search-space.ts';
import type { SearchSpace } from './search-space.ts';
import { applySubnet, resolveSubnetSpec } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';

export interface LoadedSubnet {
  model: LlamaModel;
  space: SearchSpace | null;
  config: SubnetConfig | null;
  lora: LoraSettings | null;
}

/** Base model, plus the adapter in `adapterDir` (if any) with `subnet` (a name or a JSON file; default maximal). */
export function loadWithAdapter(modelDir: string, adapterDir?: string, subnet?: string): LoadedSubnet {
  const model = loadLlama(modelDir);
  if (!adapterDir) {
    if (subnet) throw new Error('--subnet needs --adapter (a sub-network is a configuration of an elastic adapter)');
    return { model, space: null, config: null, lora: null };
  }
  const { settings, searchSpace } = loadAdapter(model, adapterDir);
  const space = resolveSearchSpace(searchSpace ?? PRESETS.none, model.config, settings.rank, settings.targets);
  const config = resolveSubnetSpec(space, subnet ?? 'maximal');
  applySubnet(model, space, config);
  return { model, space, config, lora: settings };
}
