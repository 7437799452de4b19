/**
 * The LoRA training fixture of test/golden/fixtures/lora_train.safetensors (generate_lora.py): its base model
 * with LoRA adapters at their PEFT initialisation, the batch, and its 10 AdamW steps on the adapters.
 */
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { causalLmLoss } from '../../src/models/llama/loss.ts';
import { addLora } from '../../src/adapters/peft.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { fixtureModel } from './fixture-model.ts';

export const loraFx = new SafetensorsFile(fileURLToPath(new URL('../golden/fixtures/lora_train.safetensors', import.meta.url)));
export const loraF32 = (n: string) => loraFx.readFloat32(n).data;
export const loraMeta = (k: string) => parseFloat(loraFx.metadata[k]);

/** The base with adapters; lora_B zero (PEFT's init) or the fixture's non-zero start; ids (B, Tn), labels. */
export function buildLoraFixture(bInit: 'zero' | 'nonzero') {
  const model = fixtureModel(loraFx);
  const loras = addLora(
    model,
    { rank: loraMeta('lora.r'), alpha: loraMeta('lora.alpha'), dropout: 0, targets: JSON.parse(loraFx.metadata['lora.target_modules']) },
    0,
  );
  for (const l of loras) {
    l.loraA.data.set(loraF32(`lora_init.${l.name}.lora_A.weight`));
    l.loraB.data.set(loraF32(bInit === 'zero' ? `lora_init.${l.name}.lora_B.weight` : `lora_init_nonzero_b.${l.name}.lora_B.weight`));
  }
  const ids = loraFx.readInt32('input_ids');
  return { model, loras, ids: ids.data, B: ids.shape[0], Tn: ids.shape[1], labels: loraFx.readInt32('labels').data };
}

/** The fixture's AdamW steps (adamw.* metadata) on the adapters of `m`; returns the loss before each step. */
export function trainLoraFixture(m: ReturnType<typeof buildLoraFixture>): number[] {
  const params = m.loras.flatMap((l) => [l.loraA, l.loraB]);
  const opt = new AdamW(params, {
    lr: loraMeta('adamw.lr'),
    beta1: loraMeta('adamw.beta1'),
    beta2: loraMeta('adamw.beta2'),
    eps: loraMeta('adamw.eps'),
    weightDecay: loraMeta('adamw.weight_decay'),
  });
  const losses: number[] = [];
  for (let s = 0; s < loraMeta('adamw.steps'); s++) {
    opt.zeroGrad();
    const loss = causalLmLoss(m.model.forward(m.ids, m.B, m.Tn), m.labels);
    losses.push(loss.item());
    T.backward(loss);
    opt.update();
  }
  return losses;
}
