/**
 * A 2-layer Llama-style model (GQA, RoPE, RMSNorm, SwiGLU; tied and untied heads) against PyTorch:
 * logits, loss, every parameter gradient, and a 10-step AdamW loss curve.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { fixtureModel } from '../helpers/fixture-model.ts';
import { causalLmLoss } from '../../src/models/llama/loss.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { assertClose } from '../helpers/assert-close.ts';

function load(variant: 'tied' | 'untied') {
  const fx = new SafetensorsFile(fileURLToPath(new URL(`./fixtures/llama_${variant}.safetensors`, import.meta.url)));
  const ids = fx.readInt32('input_ids');
  return {
    fx,
    model: fixtureModel(fx, { trainable: true }),
    ids: ids.data,
    B: ids.shape[0],
    Tn: ids.shape[1],
    labels: fx.readInt32('labels').data,
  };
}

for (const variant of ['tied', 'untied'] as const) {
  test(`llama ${variant}: logits, loss and every gradient equal PyTorch`, () => {
    const { fx, model, ids, B, Tn, labels } = load(variant);
    const logits = model.forward(ids, B, Tn);
    // logits differ from float64 by ~5e-6 in PyTorch itself (see gen/README.md): compare at 2e-5 absolute.
    assertClose(logits.toArray(), fx.readFloat32('logits').data, `${variant} logits`, { rtol: 1e-5, atol: 2e-5 });
    const loss = causalLmLoss(logits, labels);
    assertClose([loss.item()], fx.readFloat32('loss').data, `${variant} loss`, { rtol: 1e-5, atol: 0 });
    T.backward(loss);
    const params = model.namedParameters();
    assert.equal(params.size, [...fx.entries.keys()].filter((n) => n.startsWith('grad.')).length, 'one gradient per parameter');
    for (const [name, p] of params) {
      assertClose(p.grad!.toArray(), fx.readFloat32(`grad.${name}`).data, `${variant} grad ${name}`, { rtol: 1e-4, atol: 2e-6 });
    }
  });

  test(`llama ${variant}: 10 AdamW steps follow PyTorch's loss curve`, () => {
    const { fx, model, ids, B, Tn, labels } = load(variant);
    const params = [...model.namedParameters().values()];
    const opt = new AdamW(params, { lr: parseFloat(fx.metadata['adamw.lr']), weightDecay: parseFloat(fx.metadata['adamw.weight_decay']) });
    const expected = fx.readFloat32('adamw_losses').data;
    const losses: number[] = [];
    for (let s = 0; s < expected.length; s++) {
      opt.zeroGrad();
      const loss = causalLmLoss(model.forward(ids, B, Tn), labels);
      losses.push(loss.item());
      T.backward(loss);
      opt.update();
    }
    // Errors compound over steps (Adam divides by sqrt(v)): 1e-4 relative over 10 steps.
    assertClose(losses, expected, `${variant} loss curve`, { rtol: 1e-4, atol: 1e-5 });
    assertClose(model.norm.weight.toArray(), fx.readFloat32('final.model.norm.weight').data, `${variant} final norm weight`, {
      rtol: 1e-4,
      atol: 1e-5,
    });
  });
}
