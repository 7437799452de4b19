/**
 * The Hugging Face model directories of test/golden/fixtures/models (GQA, tied θ=1e6, llama3 and linear RoPE
 * scaling, Qwen2 biases, Mistral head_dim, BF16 storage, sharded) load through checkpoint.ts and give
 * PyTorch's logits, and survive a save → load round trip. See gen/README.md: 1e-4 absolute is ≥ 18× below what ignoring any tested feature moves.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadLlama, loadModelDir, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { noGrad } from '../../src/tensor/index.ts';
import { assertClose } from '../helpers/assert-close.ts';

const ROOT = fileURLToPath(new URL('./fixtures/models', import.meta.url));
const cases = readdirSync(ROOT).sort();
const tmp = mkdtempSync(join(tmpdir(), 'lonas-golden-models-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('every golden model directory is covered', () => {
  assert.deepEqual(cases, [
    'bf16_storage',
    'linear_rope',
    'llama3_rope',
    'llama_gqa',
    'llama_tied_theta1e6',
    'mistral_head_dim',
    'qwen2_bias',
    'sharded',
  ]);
});

for (const name of cases) {
  test(`${name}: logits equal PyTorch's`, () => {
    const dir = join(ROOT, name);
    const loaded = loadModelDir(dir);
    assert.deepEqual(loaded.unused, [], 'every tensor in the directory is used');
    assert.equal(loaded.dtype, name === 'bf16_storage' ? 'BF16' : 'F32');
    const model = loadLlama(dir);
    const fx = new SafetensorsFile(join(dir, 'expected.safetensors'));
    const ids = fx.readInt32('input_ids');
    const [B, T] = ids.shape;
    const logits = noGrad(() => model.forward(ids.data, B, T));
    assertClose(logits.toArray(), fx.readFloat32('logits').data, `${name} logits`, { rtol: 0, atol: 1e-4 });
    fx.close();

    // save (F32, config via toHfConfig over the original) → load gives the same model and the same logits
    const out = join(tmp, name);
    saveModelDir(out, model, { hfConfig: loaded.hfConfig });
    const again = loadModelDir(out);
    assert.deepEqual(again.config, loaded.config);
    for (const [n, t] of loaded.weights) assert.deepEqual(again.weights.get(n)!.toArray(), t.toArray(), n);
    assert.deepEqual(noGrad(() => loadLlama(out).forward(ids.data, B, T)).toArray(), logits.toArray());
  });
}
