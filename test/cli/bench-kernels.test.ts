/**
 * `lonas bench --json` names the kernels that multiplied by the weights during the timed runs (issue 14 item 4):
 * a BF16 checkpoint times the bf16 kernel (counting its parameters no longer widens it), a float32 one f32, a
 * 50%-sparse one the sparse kernel, a GPTQ one INT4, and an adapter's A and B add float32 products. Each count
 * is every forward of the runs (warm-up + repeats, 1 prefill + genLen decode steps) times its products.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneModel } from '../../src/compress/prune.ts';
import { quantizeModel } from '../../src/compress/quantize.ts';
import { saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { addLora, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { PRESETS } from '../../src/nas/search-space.ts';
import { Rng } from '../../src/tensor/index.ts';
import { lonas } from '../helpers/cli.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const root = mkdtempSync(join(tmpdir(), 'lonas-bench-kernels-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

const config = tinyConfig();
const layers = config.layers.length;
const forwards = (1 + 2) * (1 + 4); // (warm-up + repeats) · (prefill + decode steps)
const perForward = { projections: 7 * layers, head: 1 };

function save(name: string, m: LlamaModel, dtype: 'F32' | 'BF16'): string {
  saveModelDir(join(root, name), m, { dtype });
  return join(root, name);
}

function bench(dir: string, ...extra: string[]): Record<string, number> {
  const out = JSON.parse(
    lonas('bench', '--model', dir, ...extra, '--prompt-len', '8', '--gen-len', '4', '--warmup', '1', '--repeats', '2', '--json'),
  );
  return out.weightKernels;
}

test('bench on a BF16 checkpoint times the bf16 kernel only; float32 times f32', () => {
  const total = forwards * (perForward.projections + perForward.head);
  assert.deepEqual(bench(save('bf16', tinyModel(3, config), 'BF16')), { bf16: total });
  assert.deepEqual(bench(save('f32', tinyModel(3, config), 'F32')), { f32: total });
});

test('bench names the sparse and INT4 kernels, and an adapter adds its float32 products', () => {
  const sparse = tinyModel(4, config);
  pruneModel(sparse, [], { method: 'magnitude', sparsity: 0.5, targets: [...PROJECTIONS] });
  assert.deepEqual(bench(save('sparse', sparse, 'BF16')), { bf16: forwards * perForward.head, sparse: forwards * perForward.projections });

  const quant = tinyModel(5, config);
  const rng = new Rng(2);
  const samples = Array.from({ length: 2 }, () => Int32Array.from({ length: 8 }, () => rng.int(config.vocabSize)));
  quantizeModel(quant, samples, { bits: 4, groupSize: 8, actOrder: false, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] });
  assert.deepEqual(bench(save('int4', quant, 'F32')), { f32: forwards * perForward.head, int4: forwards * perForward.projections });

  const dir = save('adapted', tinyModel(6, config), 'BF16');
  const trained = tinyModel(6, config);
  const settings: LoraSettings = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] };
  addLora(trained, settings, 1);
  saveAdapter(join(root, 'adapter'), trained, settings, { searchSpace: PRESETS.none });
  const adapters = 2 * layers; // q and v of every layer, each A then B
  assert.deepEqual(bench(dir, '--adapter', join(root, 'adapter')), {
    f32: forwards * 2 * adapters,
    bf16: forwards * (perForward.projections + perForward.head),
  });
});
