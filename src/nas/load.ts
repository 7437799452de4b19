/** Loading a base model with an (elastic) adapter and a sub-network configuration active. */
import { join } from 'node:path';
import { loadLlama } from '../models/llama/checkpoint.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { PROJECTIONS } from '../models/llama/model.ts';
import { Linear } from '../nn/modules.ts';
import { SparseLinear, SPARSE_KERNEL_MIN_SPARSITY, weightSparsity } from '../nn/sparse-linear.ts';
import { LoraLinear, PLAIN_LORA } from '../adapters/lora.ts';
import { checkAdapterBase, loadAdapter } from '../adapters/peft.ts';
import { LONAS_ADAPTER } from '../io/artifacts.ts';
import type { LoraSettings, StoredSearchSpace } from '../adapters/peft.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import type { SearchSpace } from './search-space.ts';
import { PRESETS, parseSearchSpace, resolveSearchSpace } from './search-space.ts';
import { resolveSubnetSpec } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';
import { SuperNet } from './supernet.ts';
import type { ChannelOrder } from '../adapters/channel-order.ts';

export interface LoadedSubnet {
  model: LlamaModel;
  /** the model with its adapter and search space (null without an adapter), `config` active */
  supernet: SuperNet | null;
  config: SubnetConfig | null;
  lora: LoraSettings | null;
  /** the MLP channel order the adapter was trained with (already applied to `model`), or null */
  channelOrder: ChannelOrder | null;
}

/**
 * Base model, plus the adapter in `adapterDir` (if any) with `subnet` (a name or a JSON file; default
 * maximal). An adapter trained on importance-reordered MLP channels re-applies its order to the in-memory
 * base (loadAdapter), so narrower MLP widths — and extraction — keep the channels training kept. An adapter
 * that records its base (lonas_adapter.json `base`) must be applied to that base (checkAdapterBase).
 */
export function loadWithAdapter(modelDir: string, adapterDir?: string, subnet?: string): LoadedSubnet {
  if (adapterDir) checkAdapterBase(modelDir, adapterDir);
  const model = loadLlama(modelDir);
  if (!adapterDir) {
    if (subnet) throw new Error('--subnet needs --adapter (a sub-network is a configuration of an elastic adapter)');
    useSparseKernels(model);
    return { model, supernet: null, config: null, lora: null, channelOrder: null };
  }
  const { settings, searchSpace, channelOrder } = loadAdapter(model, adapterDir);
  const space = adapterSearchSpace(adapterDir, searchSpace, model.config, settings);
  const config = resolveSubnetSpec(space, subnet ?? 'maximal');
  useSparseKernels(model); // before the SuperNet wraps projections in elastic widths
  const supernet = new SuperNet(model, space, config);
  return { model, supernet, config, lora: settings, channelOrder };
}

/** The search space an adapter was trained with (lonas_adapter.json), resolved for the model `c`; none for a plain PEFT adapter. */
export function adapterSearchSpace(
  adapterDir: string,
  stored: StoredSearchSpace | null,
  c: LlamaConfig,
  settings: LoraSettings,
): SearchSpace {
  const spec = stored === null ? PRESETS.none : parseSearchSpace(stored, `${join(adapterDir, LONAS_ADAPTER)}: field "search_space"`);
  return resolveSearchSpace(spec, c, settings.rank, settings.targets);
}

/**
 * Projections (or adapter bases) at least half zeros switch to the sparse inference kernel. For models that
 * are used as loaded (generate, eval, bench, search, extract read the weights but do not change them), before
 * any sub-network is applied (projections already wrapped in an ElasticLinear are left as they are).
 */
export function useSparseKernels(model: LlamaModel): number {
  let n = 0;
  for (const layer of model.layers) {
    for (const p of PROJECTIONS) {
      const m = layer.proj[p];
      if (m instanceof Linear && !(m instanceof SparseLinear) && weightSparsity(m) >= SPARSE_KERNEL_MIN_SPARSITY) {
        layer.proj[p] = new SparseLinear(m);
        n++;
      } else if (
        m instanceof LoraLinear &&
        m.variant === PLAIN_LORA &&
        !(m.base instanceof SparseLinear) &&
        weightSparsity(m.base) >= SPARSE_KERNEL_MIN_SPARSITY
      ) {
        m.base = new SparseLinear(m.base);
        n++;
      }
    }
  }
  return n;
}
