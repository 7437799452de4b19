/** Demo base-model pretraining: a few steps write a loadable model directory, and a second call reuses it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLANS, PRETRAIN_META, initModel, packCorpus, planConfig, pretrainBase } from '../../src/demo/pretrain.ts';
import { writeDemoTokenizer } from '../../src/demo/tokenizer.ts';
import type { PretrainProgress } from '../../src/demo/pretrain.ts';
import { generateSuite } from '../../src/demo/tasks.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { noGrad } from '../../src/tensor/index.ts';

const TINY = { steps: 6, batchSize: 4, seqLen: 64, corpusDocs: 60, warmup: 2 };

test('pretrainBase: trains every parameter, writes a loadable model with tokenizer and metadata, then caches', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'lonas-pretrain-')), 'base');
  const events: PretrainProgress[] = [];
  const r = pretrainBase({ outDir: out, seed: 3, quick: true, plan: TINY, onProgress: (p) => events.push(p) });
  assert.equal(r.cached, false);
  assert.equal(events.length, TINY.steps);
  assert.deepEqual(
    events.map((e) => e.step),
    [1, 2, 3, 4, 5, 6],
  );
  assert.ok(events.every((e) => Number.isFinite(e.loss) && e.tokensPerSecond > 0));
  assert.ok(events[5].loss < events[0].loss, `loss falls: ${events[0].loss} → ${events[5].loss}`);
  for (const f of [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
    'special_tokens_map.json',
    PRETRAIN_META,
  ]) {
    assert.ok(existsSync(join(out, f)), f);
  }
  const model = loadLlama(out);
  const c = model.config;
  const tok = loadTokenizer(out);
  assert.equal(c.vocabSize, tok.vocabSize);
  assert.ok(c.vocabSize > 300 && c.vocabSize <= 1024, `vocabulary ${c.vocabSize}`);
  assert.equal(c.hiddenSize, PLANS.quick.hiddenSize);
  assert.equal(c.layers.length, PLANS.quick.numLayers);
  assert.deepEqual(c.layers[0], {
    intermediateSize: PLANS.quick.intermediateSize,
    numHeads: PLANS.quick.numHeads,
    numKvHeads: PLANS.quick.numKvHeads,
  });
  assert.equal(c.tieWordEmbeddings, true);
  const hf = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(hf.bos_token_id ?? 1, 1);
  // the saved weights are the trained ones: every tensor moved away from its initial value
  const init = initModel(planConfig({ ...PLANS.quick, ...TINY }, c.vocabSize), 3).namedParameters();
  for (const [name, t] of model.namedParameters()) {
    const t0 = init.get(name)!;
    let diff = 0;
    for (let i = 0; i < t.size; i++) diff = Math.max(diff, Math.abs(t.data[i] - t0.data[i]));
    assert.ok(diff > 0, `${name} was trained`);
  }
  // the model runs on the tokenizer of its directory
  const ids = tok.encode('3 + 4 = 7.');
  const logits = noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length));
  assert.deepEqual(logits.shape, [1, ids.length, c.vocabSize]);
  const meta = JSON.parse(readFileSync(join(out, PRETRAIN_META), 'utf8'));
  assert.equal(meta.seed, 3);
  assert.equal(meta.steps, TINY.steps);
  assert.equal(meta.lossCurve.length, TINY.steps);
  assert.equal(
    meta.parameters,
    [...model.namedParameters().values()].reduce((s, t) => s + t.size, 0),
  );
  assert.ok(Number.isFinite(meta.finalLoss) && meta.seconds > 0);
  assert.equal(meta.samples.length, 4);
  assert.deepEqual([meta.probe.arith.total, meta.probe.parity.total, meta.probe.story.total], [162, 20, 60]);

  // same settings: reused, nothing rewritten
  const mtime = statSync(join(out, 'model.safetensors')).mtimeMs;
  const again = pretrainBase({ outDir: out, seed: 3, quick: true, plan: TINY, onProgress: () => assert.fail('no training when cached') });
  assert.equal(again.cached, true);
  assert.equal(again.settingsHash, r.settingsHash);
  assert.equal(again.finalLoss, r.finalLoss);
  assert.equal(statSync(join(out, 'model.safetensors')).mtimeMs, mtime);

  // other settings: retrained in place
  const other = pretrainBase({ outDir: out, seed: 4, quick: true, plan: TINY });
  assert.equal(other.cached, false);
  assert.notEqual(other.settingsHash, r.settingsHash);
  assert.equal(JSON.parse(readFileSync(join(out, PRETRAIN_META), 'utf8')).seed, 4);
  loadLlama(out);
});

test('pretrainBase is deterministic for a seed and refuses a foreign directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'lonas-pretrain-'));
  const plan = { ...TINY, steps: 3 };
  const a = pretrainBase({ outDir: join(root, 'a'), seed: 9, quick: true, plan });
  const b = pretrainBase({ outDir: join(root, 'b'), seed: 9, quick: true, plan });
  assert.deepEqual(a.lossCurve, b.lossCurve);
  assert.deepEqual(readFileSync(join(root, 'a', 'model.safetensors')), readFileSync(join(root, 'b', 'model.safetensors')));
  // a given corpus is part of the settings
  const custom = pretrainBase({
    outDir: join(root, 'a'),
    seed: 9,
    quick: true,
    plan,
    corpus: Array.from({ length: 40 }, (_, i) => `${i} + 1 = ${i + 1}. The sky is blue.`),
  });
  assert.equal(custom.cached, false);
  assert.notEqual(custom.settingsHash, a.settingsHash);
  const foreign = join(root, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  assert.throws(
    () => pretrainBase({ outDir: foreign, seed: 9, quick: true, plan }),
    /foreign: exists and is not a demo base model directory \(it holds notes.txt\)/,
  );
  assert.deepEqual(readdirSync(foreign), ['notes.txt']);
});

test('packCorpus: documents as BOS … EOS in one stream, cut into full rows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-demo-tok-'));
  writeDemoTokenizer(dir);
  const tok = loadTokenizer(dir);
  const docs = generateSuite(1, { pretrainDocs: 20, train: 0, val: 0, test: 0 }).pretrain;
  const rows = packCorpus(tok, docs, 32);
  const stream = docs.flatMap((d) => [tok.bosId!, ...tok.encode(d, { addBos: false, addEos: false }), tok.eosIds[0]]);
  assert.equal(rows.length, Math.floor(stream.length / 32));
  assert.deepEqual(Array.from(rows[1]), stream.slice(32, 64));
  assert.equal(rows[0][0], tok.bosId);
});
