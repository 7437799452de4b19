/**
 * A GPTQ INT4 checkpoint (lonas quantize, group size 32) exports to Q4_1 blocks that keep its codes and
 * scales; only the block offset m = −s·z is rounded to F16. Blocks that would span two groups are
 * requantized, rows that are not whole blocks (stories260K's down_proj has 172 inputs) stored as F16, and
 * both are reported. llama.cpp runs
 * the file close to lonas's INT4 model.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import { gptqTensor, gptqToQ4_1 } from '../../src/export/gguf/gptq.ts';
import { dequantizeBlocks } from '../../src/export/gguf/quants.ts';
import { dequantize } from '../../src/nn/quantized-weight.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { parseHfConfig } from '../../src/models/llama/hf-config.ts';
import { readGptqProjection } from '../../src/models/llama/gptq-io.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { quantizeSmall } from '../helpers/cli.ts';
import { openGguf } from '../engines/llama-cpp/engine.ts';
import { lonasLogProbs, meanKl } from './gguf-helpers.ts';
import { readFileSync } from 'node:fs';

const dir = mkdtempSync(join(tmpdir(), 'lonas-gguf-gptq-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const int4 = join(dir, 'int4');
quantizeSmall(STORIES_F32(), int4);
const config = parseHfConfig(JSON.parse(readFileSync(join(int4, 'config.json'), 'utf8')), 'config.json');

test('GPTQ codes and scales map to Q4_1 blocks exactly; only the F16 offset rounds', () => {
  const file = new SafetensorsFile(join(int4, 'model.safetensors'));
  try {
    const qw = readGptqProjection(file, 'model.layers.1.self_attn.q_proj', 64, 64, config.quantization!);
    const r = gptqToQ4_1(qw);
    assert.ok(r.exact, r.note);
    const got = dequantizeBlocks(r.bytes, 'Q4_1'),
      want = dequantize(qw);
    for (let o = 0; o < qw.out; o++)
      for (let j = 0; j < qw.inF; j++) {
        const g = qw.gIdx[j] * qw.out + o;
        const offset = Math.abs(qw.scales[g] * qw.zeros[g]);
        // half an F16 ulp of s·z (10 mantissa bits), plus float32 rounding of the two products
        const bound = (offset > 0 ? 2 ** (Math.floor(Math.log2(offset)) - 11) : 0) + 4e-7 * (offset + Math.abs(want[o * qw.inF + j]));
        assert.ok(
          Math.abs(got[o * qw.inF + j] - want[o * qw.inF + j]) <= bound,
          `weight (${o}, ${j}): ${got[o * qw.inF + j]} vs ${want[o * qw.inF + j]}`,
        );
      }
    const split = gptqToQ4_1({ ...qw, gIdx: qw.gIdx.map((g, j) => (j % 32 < 16 ? g : (g + 1) % 2)) }); // act-order-like: blocks span two groups
    assert.ok(!split.exact && split.maxError > 0);
    assert.match(split.note, /split 32-input blocks: requantized to Q4_1, added max \|error\| /);
    const down = gptqTensor(readGptqProjection(file, 'model.layers.1.mlp.down_proj', 64, 172, config.quantization!));
    assert.equal(down.type, 'F16');
    assert.match(down.note, /rows of 172 inputs are not whole 32-value blocks/);
  } finally {
    file.close();
  }
});

test("the GPTQ export runs in llama.cpp close to lonas's INT4 model, and says which tensors are not Q4_1", async () => {
  const out = join(dir, 'int4.gguf');
  const report = exportGguf(int4, out, 'f32');
  const downs = report.notes.filter((n) => n.tensor.endsWith('ffn_down.weight'));
  const exact = report.notes.filter((n) => /kept exactly/.test(n.note));
  assert.equal(downs.length, 5);
  assert.ok(downs.every((n) => n.type === 'F16' && /not whole/.test(n.note)));
  assert.equal(exact.length, 5 * 6, 'q, k, v, o, gate, up of every layer keep their GPTQ codes');
  const s = await openGguf(out);
  try {
    const tokenizer = loadTokenizer(int4);
    const prompt = [tokenizer.bosId!, ...tokenizer.encode('Lily wanted to play with her ball in the garden', { addBos: false })];
    const kl = meanKl(lonasLogProbs(loadLlama(int4), prompt), await s.logProbs(prompt));
    process.stderr.write(`GPTQ → Q4_1: mean KL from lonas INT4 ${kl.toExponential(2)}\n`);
    // what is left is llama.cpp's q8_0 rounding of the activations (as in gguf-stories.test.ts) and the F16 offsets
    assert.ok(kl < 1e-3, `mean KL ${kl} from lonas's INT4 model`);
  } finally {
    await s.dispose();
  }
});
