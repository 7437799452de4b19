/**
 * Every golden Hugging Face layout (test/golden/fixtures/models: GQA, tied θ = 1e6, llama3 and linear RoPE
 * scaling, Qwen2 q/k/v biases, Mistral head_dim, BF16 storage, sharded), exported to ONNX, gives PyTorch's
 * logits in onnxruntime-node within 1e-4 — the same bar lonas itself meets on them (test/golden/models.test.ts).
 */
import { after, test } from 'node:test';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportOnnx } from '../../src/export/onnx/export.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { OrtDecoder, ort } from '../helpers/onnx-runtime.ts';
import type { OrtTypes } from '../helpers/onnx-runtime.ts';

const ROOT = fileURLToPath(new URL('../golden/fixtures/models', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'lonas-onnx-layouts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

for (const name of readdirSync(ROOT).sort()) {
  test(`${name}: onnxruntime-node logits of the export equal PyTorch's`, async () => {
    const r = exportOnnx({ model: join(ROOT, name), out: join(tmp, name) });
    const fx = new SafetensorsFile(join(ROOT, name, 'expected.safetensors'));
    const ids = fx.readInt32('input_ids');
    const expected = fx.readFloat32('logits').data;
    fx.close();
    const [B, T] = ids.shape;
    const o = ort(),
      { session } = await OrtDecoder.open(r.modelFile);
    const long = (f: (i: number) => number) => BigInt64Array.from({ length: B * T }, (_, i) => BigInt(f(i)));
    const feeds: Record<string, OrtTypes.Tensor> = {
      input_ids: new o.Tensor(
        'int64',
        long((i) => ids.data[i]),
        [B, T],
      ),
      attention_mask: new o.Tensor(
        'int64',
        long(() => 1),
        [B, T],
      ),
      position_ids: new o.Tensor(
        'int64',
        long((i) => i % T),
        [B, T],
      ),
    };
    for (const m of session.inputMetadata) {
      if (m.name.startsWith('past_key_values.'))
        feeds[m.name] = new o.Tensor('float32', new Float32Array(0), [B, Number(m.shape[1]), 0, Number(m.shape[3])]);
    }
    const logits = (await session.run(feeds)).logits.data as Float32Array;
    assertClose(logits, expected, `${name} logits`, { rtol: 0, atol: 1e-4 });
  });
}
