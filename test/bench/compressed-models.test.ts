/** The compressed models of the `compressed` bench: real formats, loaded back as `lonas generate` loads them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { SparseLinear, sparsity } from '../../src/nn/sparse-linear.ts';
import { Linear } from '../../src/nn/modules.ts';
import { compressInPlace, describeLayers, loadForInference, writeCompressed } from '../../bench/compressed-models.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const ids = Int32Array.from([3, 7, 1, 12, 30, 5]);
const logits = (m: LlamaModel) => m.forwardCached(ids, 1, ids.length, m.newCache(1, ids.length)).toArray();

function withF32Dir(fn: (root: string, f32Dir: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'lonas-bench-models-'));
  try {
    const f32Dir = join(root, 'f32');
    saveModelDir(f32Dir, tinyModel(3, tinyConfig({ tieWordEmbeddings: true })));
    fn(root, f32Dir);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('int4: every projection loads as QuantLinear from the GPTQ checkpoint and computes what was quantised', () => {
  withF32Dir((root, f32Dir) => {
    const loaded = loadForInference(writeCompressed(f32Dir, 'int4', join(root, 'int4')));
    const inMemory = loadForInference(f32Dir);
    compressInPlace(inMemory, 'int4');
    for (const layer of loaded.layers) for (const p of PROJECTIONS) assert.ok(layer.proj[p] instanceof QuantLinear, p);
    assertClose(logits(loaded), logits(inMemory), 'loaded vs in-memory INT4 logits', { atol: 1e-5, rtol: 1e-5 });
    const f32 = logits(loadForInference(f32Dir));
    assert.ok(
      f32.some((v, i) => Math.abs(v - logits(loaded)[i]) > 1e-4),
      'quantisation changed nothing',
    );
    const d = describeLayers(loaded);
    assert.deepEqual(d.projections, { QuantLinear: 14 });
    assert.match(d.lm_head, /^float32, tied.*not quantised or pruned/);
    assert.ok(d.lm_head_share_of_decode_bytes > 0 && d.lm_head_share_of_decode_bytes < 1);
  });
});

test('int4_bf16: INT4 projections, and the tied embedding / LM head kept in bfloat16', () => {
  withF32Dir((root, f32Dir) => {
    const loaded = loadForInference(writeCompressed(f32Dir, 'int4_bf16', join(root, 'int4_bf16')));
    for (const layer of loaded.layers) for (const p of PROJECTIONS) assert.ok(layer.proj[p] instanceof QuantLinear, p);
    const d = describeLayers(loaded);
    assert.match(d.lm_head, /^bfloat16, tied/);
    assert.ok(loaded.lmHead instanceof Linear && loaded.lmHead.weightStore.bf16 !== null, 'describeLayers left the head in bf16');
    const int4 = describeLayers(loadForInference(writeCompressed(f32Dir, 'int4', join(root, 'int4'))));
    assert.equal(int4.decode_weight_bytes - d.decode_weight_bytes, 2 * d.embedding_params, 'the head streams half the bytes');
  });
});

test('int4_head: the LM head is INT4 too, written and loaded as `lonas quantize --lm-head` does (untied, float32 embedding)', () => {
  withF32Dir((root, f32Dir) => {
    const dir = writeCompressed(f32Dir, 'int4_head', join(root, 'int4_head'));
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.quantization_config.lm_head, true);
    assert.equal(cfg.tie_word_embeddings, false);
    const loaded = loadForInference(dir);
    for (const layer of loaded.layers) for (const p of PROJECTIONS) assert.ok(layer.proj[p] instanceof QuantLinear, p);
    assert.ok(loaded.lmHead instanceof QuantLinear, `LM head is a ${loaded.lmHead.constructor.name}`);
    const f32 = loadForInference(f32Dir);
    assert.deepEqual(loaded.embed.weight.data, f32.embed.weight.data, 'the embedding stays float32, unchanged');
    const inMemory = loadForInference(f32Dir);
    compressInPlace(inMemory, 'int4_head');
    assertClose(logits(loaded), logits(inMemory), 'loaded vs in-memory logits', { atol: 1e-5, rtol: 1e-5 });
    const d = describeLayers(loaded);
    assert.deepEqual(d.projections, { QuantLinear: 14 });
    assert.match(d.lm_head, /^INT4 \(GPTQ layout, group 128\), untied/);
    const int4 = describeLayers(loadForInference(writeCompressed(f32Dir, 'int4', join(root, 'int4'))));
    const V = d.embedding_params / 16; // vocab; hidden 16 is one group (< 128): codes V·16/2 B + f32 scale and zero per row
    assert.equal(
      int4.decode_weight_bytes - d.decode_weight_bytes,
      4 * d.embedding_params - (d.embedding_params / 2 + 8 * V),
      'the head streams INT4 codes + scales/zeros instead of float32',
    );
  });
});

test('sparse: half of every projection row is zero and the loader swaps in the sparse kernel', () => {
  withF32Dir((root, f32Dir) => {
    const loaded = loadForInference(writeCompressed(f32Dir, 'sparse', join(root, 'sparse')));
    for (const layer of loaded.layers) {
      for (const p of PROJECTIONS) {
        const m = layer.proj[p];
        assert.ok(m instanceof SparseLinear, p);
        assert.equal(sparsity((m as SparseLinear).weight), 0.5);
      }
    }
    assert.deepEqual(describeLayers(loaded).projections, { SparseLinear: 14 });
    const f32 = loadForInference(f32Dir);
    assert.ok(f32.layers.every((l) => PROJECTIONS.every((p) => l.proj[p].constructor === Linear)));
    assert.ok(describeLayers(loaded).decode_weight_bytes < describeLayers(f32).decode_weight_bytes);
  });
});
