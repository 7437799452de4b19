/**
 * `--compute bf16` against PyTorch (fixtures/lora_bf16.safetensors, gen/generate_bf16.py) on the LoRA training
 * fixture (2 × 9 tokens: 18 rows, so every base product takes the bf16 GEMM):
 *   - against PyTorch computing the same thing (bf16 inputs of the base products, float32 accumulation, dY
 *     rounded for dX): step-0 logits and the 10-step loss curve within TIGHT — only the summation order
 *     differs, and an activation that lands on the other side of a bf16 rounding boundary;
 *   - against torch.autocast('cpu', dtype=torch.bfloat16) (which also rounds every product's output and the
 *     adapters' inputs to bf16): the loss curve within AUTOCAST;
 *   - both tolerances are smaller than bf16's distance from the float32 curve, so float32 compute fails them.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { setGemmCompute } from '../../src/kernels/compute-mode.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { buildLoraFixture, trainLoraFixture } from '../helpers/lora-fixture.ts';

const fx = new SafetensorsFile(fileURLToPath(new URL('./fixtures/lora_bf16.safetensors', import.meta.url)));
const f32 = (n: string) => Array.from(fx.readFloat32(n).data);
const TIGHT = { rtol: 2e-4, atol: 2e-4 };
const AUTOCAST = { rtol: 5e-3, atol: 0 };
after(() => setGemmCompute('f32'));

function bf16Run() {
  setGemmCompute('bf16');
  try {
    const m = buildLoraFixture('nonzero');
    const logits = T.noGrad(() => m.model.forward(m.ids, m.B, m.Tn)).toArray();
    return { logits, losses: trainLoraFixture(m) };
  } finally {
    setGemmCompute('f32');
  }
}

test('bf16 compute follows PyTorch bf16 (logits, 10-step loss curve) and autocast (loss curve)', () => {
  const { logits, losses } = bf16Run();
  assertClose(logits, f32('logits_bf16_inputs'), 'step-0 logits vs PyTorch bf16 inputs', TIGHT);
  assertClose(losses, f32('losses_bf16_inputs'), 'loss curve vs PyTorch bf16 inputs', TIGHT);
  assertClose(losses, f32('losses_autocast'), 'loss curve vs PyTorch autocast', AUTOCAST);
});

test('the tolerances tell bf16 from float32: the float32 curve is outside them', () => {
  const exact = f32('losses_f32'),
    bf = f32('losses_bf16_inputs'),
    ac = f32('losses_autocast');
  const outside = (a: number[], b: number[], tol: { rtol: number; atol: number }) =>
    a.some((v, i) => Math.abs(v - b[i]) > tol.atol + tol.rtol * Math.abs(b[i]));
  assert.ok(outside(exact, bf, TIGHT), 'float32 losses are within TIGHT of the bf16 ones');
  assert.ok(outside(exact, ac, AUTOCAST), 'float32 losses are within AUTOCAST of the autocast ones');
});
