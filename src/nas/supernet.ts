/**
 * A super-network: a base model with elastic LoRA adapters (`loras`) and the search space over their sizes
 * (`space`). One sub-network configuration is active at a time — the modules compute at its sizes — and
 * everything that looks at another configuration does so through `with`, which restores the active one
 * however the work ends (returns, throws, or its promise settles).
 */
import { noGrad } from '../tensor/index.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { withAdaptersOff } from '../adapters/lora.ts';
import type { LoraLinear } from '../adapters/lora.ts';
import { loraModules } from '../adapters/peft.ts';
import type { SearchSpace } from './search-space.ts';
import { applyFullSize, applySubnet, namedSubnet } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';
import { countCost } from './cost.ts';
import type { CostDefinition, ParamCount } from './cost.ts';
import { extractMerged } from './extract.ts';

export interface SubnetCost {
  params: ParamCount;
  /** multiply-accumulates of one 1×seqLen forward pass (cost.ts countMacs) under the cost definition */
  macs: number;
}

export class SuperNet {
  readonly loras: LoraLinear[];
  private active: SubnetConfig;

  /** Activates `config` (default: the maximal sub-network). */
  constructor(
    readonly model: LlamaModel,
    readonly space: SearchSpace,
    config: SubnetConfig = namedSubnet(space, 'maximal'),
  ) {
    this.loras = loraModules(model);
    this.active = config;
    applySubnet(model, space, config);
  }

  /** The active configuration. */
  get config(): SubnetConfig {
    return this.active;
  }

  /** Makes `config` the active configuration (every module's sizes set explicitly). */
  apply(config: SubnetConfig): void {
    applySubnet(this.model, this.space, config);
    this.active = config;
  }

  /** Runs `fn` with `config` active, then re-activates the previous configuration (also when `fn` throws or rejects). */
  with<T>(config: SubnetConfig, fn: () => T): T {
    return this.during(() => this.apply(config), fn);
  }

  /** `config` as a new, physically smaller model with the adapters merged (src/nas/extract.ts). */
  extract(config: SubnetConfig): LlamaModel {
    return this.with(config, () => noGrad(() => extractMerged(this.model)));
  }

  /** Parameters and MACs of the model at `config` under `d` (merged: the adapter ranks count nothing). */
  cost(config: SubnetConfig, d: CostDefinition): SubnetCost {
    return this.with(config, () => countCost(this.model, d));
  }

  /** Parameters and MACs of the base model alone (1×seqLen): every projection at full size, the adapters switched off. */
  baseCost(seqLen: number): SubnetCost {
    return this.during(
      () => applyFullSize(this.model),
      () => withAdaptersOff(this.loras, () => countCost(this.model, { merged: false, seqLen })),
    );
  }

  /** `setup` changes the model's sizes for `fn`; afterwards the active configuration is applied again. */
  private during<T>(setup: () => void, fn: () => T): T {
    const previous = this.active;
    let result: T;
    try {
      setup();
      result = fn();
    } catch (e) {
      this.apply(previous);
      throw e;
    }
    if (result instanceof Promise) return result.finally(() => this.apply(previous)) as T;
    this.apply(previous);
    return result;
  }
}
