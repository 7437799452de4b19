/**
 * Weights kept in bfloat16 (load option weights 'auto' | 'bf16'; nn/modules.ts WeightStore): the same numbers as
 * the float32 upcast, from half the bytes.
 *  - stories260K BF16 with bf16-resident weights reproduces the reference greedy story byte for byte, and its
 *    logits (prefill through the widened-tile path, decode through the small-M kernel, a batch) match the same
 *    checkpoint loaded as float32 to 1e-5 relative to the logits' scale;
 *  - the embedding lookup equals its float32 counterpart (elastic widths over bf16: test/adapters/elastic.test.ts);
 *  - LoRA wraps a bf16 base; a bf16 weight asked for as a float32 Tensor is widened exactly, once, for the tied
 *    embedding and LM head together; weights 'bf16' refuses a float32 checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import { Embedding, Linear, randomNormal } from '../../src/nn/modules.ts';
import { LoraLinear } from '../../src/adapters/lora.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { bf16Weight } from '../helpers/bf16-weight.ts';
import { ASSETS, STORIES_BF16, STORIES_F32 } from '../helpers/assets.ts';

const resident = loadLlama(STORIES_BF16(), { weights: 'bf16' });
const upcast = loadLlama(STORIES_BF16(), { weights: 'f32' });

/** |a − b| ≤ 1e-5 · max|b| (+ the elementwise 1e-5 relative): float32 sums in another order, nothing else. */
function closeLogits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  assertClose(a, b, what, { rtol: 1e-5, atol: 1e-5 * scale });
}

test('weights: bf16 keeps every projection, the embedding and the LM head in bfloat16; f32 keeps none', () => {
  const layers = resident.config.layers.length;
  const s = resident.weightStorage();
  assert.equal(s.f32, 0);
  assert.equal(s.bf16, 7 * layers + (resident.config.tieWordEmbeddings ? 1 : 2));
  assert.deepEqual(upcast.weightStorage().bf16, 0);
  assert.ok(s.bytes < 0.55 * upcast.weightStorage().bytes, `bf16 model ${s.bytes} B vs float32 ${upcast.weightStorage().bytes} B`);
  // 'auto' (loadLlama's default) keeps a BF16 checkpoint in bf16 and loads a float32 one as float32
  assert.equal(loadLlama(STORIES_BF16()).weightStorage().f32, 0);
  assert.equal(loadLlama(STORIES_F32()).weightStorage().bf16, 0);
});

test('weights: bf16 refuses a float32 checkpoint (rounding would change the model)', () => {
  assert.throws(() => loadLlama(STORIES_F32(), { weights: 'bf16' }), /is stored as F32; weights: 'bf16' keeps BF16-stored weights only/);
});

test('greedy 256 tokens from BOS with bf16-resident weights reproduce the reference story byte for byte', () => {
  const tok = loadTokenizer(STORIES_BF16());
  const out = generate(resident, [[tok.bosId!]], { maxNewTokens: 256, strategy: { kind: 'greedy' }, eosIds: tok.eosIds })[0];
  const expected = readFileSync(join(ASSETS, 'models', 'stories260K', 'expected_greedy_256_from_bos.bf16.txt'), 'utf8');
  assert.equal(`${tok.decode(out)}\n`, expected);
  assert.equal(resident.weightStorage().f32, 0, 'generation widened a weight');
});

test('bf16-resident logits equal the float32 upcast: prefill (m > 16), decode (m = 1), a batch of 3 (m = 3)', () => {
  const rng = new Rng(7);
  const V = resident.config.vocabSize;
  const prompt = Int32Array.from({ length: 40 }, () => 1 + rng.int(V - 1));
  noGrad(() => {
    // full forward (no cache): every position, m = 40 rows per projection
    closeLogits(resident.forward(prompt, 1, 40).contiguousData(), upcast.forward(prompt, 1, 40).contiguousData(), 'forward logits');
    const cr = resident.newCache(3, 48),
      cu = upcast.newCache(3, 48);
    const batch = Int32Array.from({ length: 3 * 40 }, (_, i) => prompt[(i * 7) % 40]);
    closeLogits(
      resident.forwardCached(batch, 3, 40, cr, { lastOnly: true }).contiguousData(),
      upcast.forwardCached(batch, 3, 40, cu, { lastOnly: true }).contiguousData(),
      'prefill logits',
    );
    for (let t = 0; t < 5; t++) {
      const next = Int32Array.of(5 + t, 60 + t, 200 + t);
      closeLogits(
        resident.forwardCached(next, 3, 1, cr).contiguousData(),
        upcast.forwardCached(next, 3, 1, cu).contiguousData(),
        `decode logits ${t}`,
      );
    }
  });
  assert.equal(resident.weightStorage().f32, 0);
});

test('a bf16 embedding looks up the same rows; ids outside the vocabulary are an error', () => {
  const { bits, f32 } = bf16Weight(new Rng(4), 50, 12);
  const ids = Int32Array.from([0, 49, 7, 7, 23]);
  assert.deepEqual(new Embedding(bits).forward(ids, [5]).toArray(), new Embedding(f32).forward(ids, [5]).toArray());
  assert.throws(() => new Embedding(bits).forward(Int32Array.of(50), [1]), /token id 50 at position 0 is outside the vocabulary/);
});

test('LoRA wraps a bf16 base: same outputs as over the float32 base', () => {
  const rng = new Rng(5);
  const { bits, f32 } = bf16Weight(rng, 24, 20);
  const a = randomNormal(rng, [4, 20], 0.3),
    b = randomNormal(rng, [24, 4], 0.3);
  const opts = { rank: 4, alpha: 8, dropout: 0 };
  const la = new LoraLinear(new Linear(bits), 'q', opts, { a, b }),
    lb = new LoraLinear(new Linear(f32), 'q', opts, { a, b });
  const x = randomNormal(rng, [3, 20], 1);
  assertClose(la.forward(x).contiguousData(), lb.forward(x).contiguousData(), 'LoRA over bf16 vs float32 base', { rtol: 1e-5, atol: 1e-5 });
});

test('asking a bf16 weight for its float32 Tensor widens it exactly, once, for the tied embedding and head together', () => {
  const m = loadLlama(STORIES_BF16(), { weights: 'bf16' });
  assert.ok(m.config.tieWordEmbeddings, 'stories260K ties its head (the test relies on it)');
  const head = m.lmHead as Linear;
  const bits = head.weightStore.bf16!;
  const w = m.embed.weight; // widens
  assert.equal(head.weightStore.bf16, null);
  assert.equal(head.weight, w, 'the tied head shares the widened tensor');
  assert.deepEqual(w.contiguousData(), bits.toTensor().contiguousData());
  assert.equal(m.weightStorage().bf16, 7 * m.config.layers.length);
});
