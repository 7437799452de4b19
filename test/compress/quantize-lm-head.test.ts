/**
 * `lonas quantize --lm-head` (quantizeModel with lmHead) on a tiny tied Llama (vocab 40, hidden 16, 2 layers,
 * group 8): the head is GPTQ-quantised from its inputs in the quantised model, untied (the embedding keeps
 * its float weights), saved as lm_head.qweight/… and loaded back as a QuantLinear computing from INT4 codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.ts';
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import { dequantize, gptqQuantize } from '../../src/compress/gptq.ts';
import { quantizeModel } from '../../src/compress/quantize.ts';
import type { QuantizeOptions } from '../../src/compress/quantize.ts';
import { kernels } from '../../src/kernels/index.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { LlamaModel, PROJECTIONS } from '../../src/models/llama/model.ts';
import { extractMerged } from '../../src/nas/extract.ts';
import { Linear } from '../../src/nn/modules.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { Rng, Tensor, noGrad } from '../../src/tensor/index.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const OPTS: QuantizeOptions = { bits: 4, groupSize: 8, actOrder: true, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] };
const rng = new Rng(11);
const samples = Array.from({ length: 4 }, () => Int32Array.from({ length: 12 }, () => rng.int(40)));
const ids = Int32Array.from([3, 7, 1, 12, 30, 5, 22, 9]);
const logits = (m: LlamaModel) => noGrad(() => m.forwardCached(ids, 1, ids.length, m.newCache(1, ids.length)).toArray());
const tied = () => tinyModel(5, tinyConfig({ tieWordEmbeddings: true }));

function withDir(fn: (dir: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'lonas-quant-head-'));
  try {
    fn(join(root, 'm'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** The LM head's inputs in `model` as calibration sees them: the final RMSNorm of every sample, H = 2/N Σ xᵀx (C, C). */
function headHessian(model: LlamaModel): Float64Array {
  const C = model.config.hiddenSize;
  const sum = new Float32Array(C * C);
  noGrad(() => {
    for (const s of samples) {
      let h = model.embed.forward(s, [1, s.length]);
      const pos = Int32Array.from(s, (_, i) => i);
      for (let i = 0; i < model.layers.length; i++) h = model.forwardLayer(i, h, pos);
      const x = model.norm.forward(h).contiguousData() as Float32Array; // (1, T, C)
      kernels().gemm(true, false, C, C, s.length, 1, x, 0, C, x, 0, C, 1, sum, 0, C);
    }
  });
  return Float64Array.from(sum, (v) => (2 * v) / samples.length);
}

/** The model's tensors with the LM head replaced by `head` (V, C), as a plain float model. */
function floatWithHead(m: LlamaModel, head: Float32Array): LlamaModel {
  const weights = new Map(m.namedParameters());
  weights.set('lm_head.weight', new Tensor(head, [m.config.vocabSize, m.config.hiddenSize]));
  return new LlamaModel({ ...m.config, tieWordEmbeddings: false, quantization: null }, weights);
}

test('--lm-head: GPTQ of the head from the final-norm outputs of the quantised model; untied, the embedding unchanged', () => {
  const model = tied();
  const embedding = Float32Array.from(model.embed.weight.data);
  const r = quantizeModel(model, samples, { ...OPTS, lmHead: true });
  const { hessian, factor, columns, install } = r.phases;
  for (const [phase, s] of Object.entries(r.phases)) assert.ok(s > 0, `phase ${phase} timed: ${s} s`);
  assert.ok(hessian + factor + columns + install <= r.seconds + 0.002, `phases ${JSON.stringify(r.phases)} within ${r.seconds} s`);
  const head = model.lmHead;
  assert.ok(head instanceof QuantLinear, `the LM head is a ${head.constructor.name}, not quantised`);
  assert.equal(model.config.tieWordEmbeddings, false);
  assert.equal(model.config.quantization?.lmHead, true);
  assert.deepEqual(model.embed.weight.data, embedding, 'the embedding keeps its float weights');
  assert.notEqual(head.base.weightStore, model.embed.weightStore, 'the head has its own weight');
  const expected = gptqQuantize(embedding, 40, 16, headHessian(model), {
    bits: 4,
    groupSize: 8,
    actOrder: true,
    blockSize: 128,
    percDamp: 0.01,
  });
  assert.deepEqual(head.qw.q, expected.q, "codes of GPTQ with the quantised model's head inputs");
  assert.deepEqual(head.qw.gIdx, expected.gIdx);
  assertClose(head.qw.scales, expected.scales, 'scales (rounded to f16)', { rtol: 1e-3, atol: 0 });
  assert.deepEqual(head.base.weight.data, dequantize(head.qw), 'the float head weight is the dequantised one');
});

test('--lm-head: save → load gives a QuantLinear head, the in-memory logits, and those of a float model with the dequantised head', () => {
  withDir((dir) => {
    const model = tied();
    const original = Float32Array.from(model.embed.weight.data);
    quantizeModel(model, samples, { ...OPTS, lmHead: true });
    saveModelDir(dir, model);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.quantization_config.lm_head, true);
    assert.equal(cfg.tie_word_embeddings, false);
    const file = new SafetensorsFile(join(dir, 'model.safetensors'));
    for (const part of ['qweight', 'qzeros', 'scales', 'g_idx']) assert.ok(file.has(`lm_head.${part}`), `lm_head.${part} written`);
    assert.ok(!file.has('lm_head.weight'), 'no float head in the file');
    assert.deepEqual(file.readFloat32('model.embed_tokens.weight').data, original, 'the embedding is stored unchanged');
    file.close();

    const loaded = loadLlama(dir);
    const head = loaded.lmHead;
    assert.ok(head instanceof QuantLinear, `loaded LM head is a ${head.constructor.name}`);
    assert.equal(loaded.config.quantization?.lmHead, true);
    assert.equal(loaded.config.tieWordEmbeddings, false);
    assert.deepEqual(loaded.embed.weight.data, original);
    assert.deepEqual(head.qw.q, (model.lmHead as QuantLinear).qw.q);
    const want = logits(model);
    assertClose(logits(loaded), want, 'loaded vs in-memory logits', { rtol: 1e-5, atol: 1e-5 });
    assertClose(logits(floatWithHead(loaded, dequantize(head.qw))), want, 'float model with the dequantised head', {
      rtol: 1e-5,
      atol: 1e-5,
    });
    const floatHead = logits(floatWithHead(loaded, original));
    assert.ok(
      floatHead.some((v, i) => Math.abs(v - want[i]) > 1e-3),
      'a float head gives other logits (the head was not quantised)',
    );

    head.base.weight.data.fill(0); // inference must not read the float weight: the INT4 kernel computes from the codes
    assertClose(logits(loaded), want, 'logits from the INT4 codes alone', { rtol: 1e-5, atol: 1e-5 });
  });
});

test('--lm-head: zero weights of the head stay exactly zero, in memory and on disk', () => {
  withDir((dir) => {
    const model = tinyModel(6, tinyConfig());
    const w = (model.lmHead as Linear).weight.data;
    for (let k = 0; k < w.length; k += 3) w[k] = 0;
    quantizeModel(model, samples, { ...OPTS, lmHead: true });
    saveModelDir(dir, model);
    const head = loadLlama(dir).lmHead;
    assert.ok(head instanceof QuantLinear);
    const deq = dequantize(head.qw);
    for (let k = 0; k < deq.length; k += 3) assert.equal(deq[k], 0, `head weight ${k} stays zero`);
    assert.ok(deq.some((v, k) => k % 3 !== 0 && v !== 0));
  });
});

test('without --lm-head nothing changes: the head stays the tied float embedding, and no lm_head is written', () => {
  withDir((dir) => {
    const model = tied();
    quantizeModel(model, samples, OPTS);
    assert.ok(model.lmHead instanceof Linear && model.lmHead.weightStore === model.embed.weightStore, 'still tied');
    assert.equal(model.config.quantization?.lmHead, undefined);
    saveModelDir(dir, model);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.tie_word_embeddings, true);
    assert.ok(!('lm_head' in cfg.quantization_config));
    const file = new SafetensorsFile(join(dir, 'model.safetensors'));
    assert.deepEqual(
      [...file.entries.keys()].filter((n) => n.startsWith('lm_head')),
      [],
    );
    file.close();
    const loaded = loadLlama(dir);
    assert.ok(loaded.lmHead instanceof Linear && loaded.lmHead.weightStore === loaded.embed.weightStore);
    assertClose(logits(loaded), logits(model), 'loaded vs in-memory logits', { rtol: 1e-5, atol: 1e-5 });
  });
});

test('extracting (merging) a model with a quantised head keeps the head quantised', () => {
  const model = tied();
  quantizeModel(model, samples, { ...OPTS, lmHead: true });
  const out = extractMerged(model);
  assert.ok(out.lmHead instanceof QuantLinear);
  assert.equal(out.lmHead.qw, (model.lmHead as QuantLinear).qw);
  assertClose(logits(out), logits(model), 'extracted vs source', { rtol: 1e-5, atol: 1e-5 });
});

test('loading refuses a quantised-head flag without lm_head.qweight, a mis-shaped one, and lm_head.qweight without the flag', () => {
  withDir((dir) => {
    const model = tied();
    quantizeModel(model, samples, { ...OPTS, lmHead: true });
    saveModelDir(dir, model);
    const weights = join(dir, 'model.safetensors'),
      config = join(dir, 'config.json');
    const file = new SafetensorsFile(weights);
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, e] of file.entries)
      tensors[name] = { dtype: e.dtype as TensorToWrite['dtype'], shape: e.shape, data: file.readRaw(name) };
    file.close();
    const rewrite = (edit: (t: Record<string, TensorToWrite>) => void) => {
      const t = { ...tensors };
      edit(t);
      writeSafetensors(weights, t);
    };

    rewrite((t) => delete t['lm_head.qweight']);
    assert.throws(
      () => loadLlama(dir),
      (e: Error) => e.message.startsWith(`${weights}: has no tensor 'lm_head.qweight'`) && e.message.includes(config),
    );

    const qweight = tensors['lm_head.qweight'];
    rewrite((t) => (t['lm_head.qweight'] = { ...qweight, shape: [qweight.shape[1], qweight.shape[0]] }));
    assert.throws(
      () => loadLlama(dir),
      (e: Error) =>
        e.message.includes(weights) &&
        /'lm_head\.qweight' has shape \[40, 2\], a 4-bit \(40, 16\) layer .* needs \[2, 40\]/.test(e.message),
    );

    rewrite(() => {});
    const cfg = JSON.parse(readFileSync(config, 'utf8'));
    delete cfg.quantization_config.lm_head;
    writeFileSync(config, JSON.stringify(cfg));
    assert.throws(
      () => loadLlama(dir),
      (e: Error) =>
        e.message.startsWith(`${weights}: holds a GPTQ-quantised LM head ('lm_head.qweight')`) && /add "lm_head": true/.test(e.message),
    );
  });
});
