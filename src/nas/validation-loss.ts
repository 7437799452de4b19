/** The validation loss of one sub-network configuration (the trainer's evaluation and the search's loss score). */
import { noGrad } from '../tensor/index.ts';
import type { Batch } from '../io/batches.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { causalLmLoss } from '../models/llama/loss.ts';
import type { LoraLinear } from '../adapters/lora.ts';
import type { SearchSpace } from './search-space.ts';
import { applySubnet } from './subnet.ts';
import type { SubnetConfig } from './subnet.ts';

/** Mean loss over the validation batches (token-weighted), dropout off, for one configuration. */
export function validationLoss(model: LlamaModel, loras: LoraLinear[], space: SearchSpace, config: SubnetConfig, batches: Batch[]): number {
  const wasTraining = loras.map((l) => l.training);
  loras.forEach((l) => (l.training = false));
  applySubnet(model, space, config);
  let sum = 0,
    n = 0;
  noGrad(() => {
    for (const b of batches) {
      const loss = causalLmLoss(model.forward(b.inputIds, b.B, b.T), b.labels).item();
      sum += loss * b.lossTokens;
      n += b.lossTokens;
    }
  });
  loras.forEach((l, i) => (l.training = wasTraining[i]));
  return sum / n;
}
