/** KV-cache inference and generation on the real stories260K model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { generate, sampleToken, sharedPromptPrefix } from '../../src/models/llama/generate.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { ASSETS, STORIES_BF16, STORIES_F32 } from '../helpers/assets.ts';

const model = loadLlama(STORIES_F32());
const ids = [1, 403, 407, 261, 378, 30, 285, 284, 279, 400, 11, 266];

test('KV-cache decoding equals full recomputation (prefill then one token at a time)', () => {
  const T = ids.length;
  const full = noGrad(() => model.forward(Int32Array.from(ids), 1, T)).toArray(); // (1, T, V)
  const V = model.config.vocabSize;
  const cache = model.newCache(1, T);
  const prefill = 5;
  const first = model.forwardCached(Int32Array.from(ids.slice(0, prefill)), 1, prefill, cache).toArray();
  assertClose(first, full.slice(0, prefill * V), 'prefill logits', { rtol: 1e-5, atol: 1e-5 });
  for (let t = prefill; t < T; t++) {
    const step = model.forwardCached(Int32Array.from([ids[t]]), 1, 1, cache).toArray();
    assertClose(step, full.slice(t * V, (t + 1) * V), `decode logits at ${t}`, { rtol: 1e-5, atol: 1e-5 });
  }
});

test('a left-padded batch generates exactly what each prompt generates alone', () => {
  const prompts = [ids.slice(0, 4), ids.slice(0, 9), ids.slice(2, 3)];
  const alone = prompts.map((p) => generate(model, [p], { maxNewTokens: 12, strategy: { kind: 'greedy' }, eosIds: [2] })[0]);
  const batched = generate(model, prompts, { maxNewTokens: 12, strategy: { kind: 'greedy' }, eosIds: [2] });
  assert.deepEqual(batched, alone);
});

test('a shared prompt prefix is prefilled once: same logits and cache as every row computing it', () => {
  const prefix = ids.slice(0, 6);
  const prompts = [
    [...prefix, 300, 301],
    [...prefix, 302],
    [...prefix, 303, 304, 305, 306],
  ];
  const B = prompts.length,
    T = Math.max(...prompts.map((p) => p.length)),
    V = model.config.vocabSize;
  const ids2 = new Int32Array(B * T),
    keyStart = new Int32Array(B),
    positions = new Int32Array(B * T);
  prompts.forEach((p, b) => {
    keyStart[b] = T - p.length;
    ids2.set(p, b * T + keyStart[b]);
    for (let t = 0; t < T; t++) positions[b * T + t] = Math.max(0, t - keyStart[b]);
  });
  const run = (sharedPrefix: number) => {
    const cache = model.newCache(B, T + 1);
    const logits = model.forwardCached(ids2, B, T, cache, { positions, keyStart, lastOnly: true, sharedPrefix }).toArray();
    const next = model
      .forwardCached(Int32Array.from([5, 6, 7]), B, 1, cache, { positions: Int32Array.from(prompts.map((p) => p.length)), keyStart })
      .toArray();
    return { logits, next, k: Array.from(cache.k[1]), v: Array.from(cache.v[1]) };
  };
  const plain = run(0),
    shared = run(6);
  // the same sums over differently shaped GEMMs (6 + 2·… packed rows vs 3·… rows): float rounding, ~1e-5
  const tol = { rtol: 1e-4, atol: 5e-5 };
  assertClose(shared.logits, plain.logits, 'prefill logits (B, 1, V)', tol);
  assertClose(shared.k, plain.k, 'cached keys of layer 1', tol);
  assertClose(shared.v, plain.v, 'cached values of layer 1', tol);
  assertClose(shared.next, plain.next, 'next decode step', tol);
  assert.equal(shared.logits.length, B * V);
  // a wrong claim is refused, not computed
  assert.throws(
    () => model.forwardCached(ids2, B, T, model.newCache(B, T), { positions, keyStart, lastOnly: true, sharedPrefix: 7 }),
    /row 1's token 6 .* differs|shorter than every row/,
  );
});

test('sharedPromptPrefix: common leading tokens, each prompt keeps one of its own, short ones are not shared', () => {
  assert.equal(
    sharedPromptPrefix([
      [1, 2, 3, 4, 5, 6],
      [1, 2, 3, 4, 5, 7],
    ]),
    5,
  );
  assert.equal(
    sharedPromptPrefix([
      [1, 2, 3, 4, 5],
      [1, 2, 3, 4, 5, 6],
    ]),
    4,
  );
  assert.equal(
    sharedPromptPrefix([
      [1, 2, 3, 9],
      [1, 2, 3, 8],
    ]),
    0,
  );
  assert.equal(
    sharedPromptPrefix([
      [1, 2, 3, 4, 5, 6],
      [2, 2, 3, 4, 5, 6],
    ]),
    0,
  );
});

test('prompts sharing a template prefix generate exactly what each generates alone', () => {
  const prompts = [[...ids.slice(0, 7), 300], [...ids.slice(0, 7), 320, 330, 340], [...ids.slice(0, 9)]];
  const alone = prompts.map((p) => generate(model, [p], { maxNewTokens: 12, strategy: { kind: 'greedy' }, eosIds: [2] })[0]);
  const batched = generate(model, prompts, { maxNewTokens: 12, strategy: { kind: 'greedy' }, eosIds: [2] });
  assert.deepEqual(batched, alone);
});

test('beam search with one beam equals greedy; more beams give a likelier sequence', () => {
  const prompt = ids.slice(0, 3);
  const greedy = generate(model, [prompt], { maxNewTokens: 20, strategy: { kind: 'greedy' }, eosIds: [2] })[0];
  const beam1 = generate(model, [prompt], { maxNewTokens: 20, strategy: { kind: 'beam', beams: 1 }, eosIds: [2] })[0];
  assert.deepEqual(beam1, greedy);
  const beam4 = generate(model, [prompt], { maxNewTokens: 20, strategy: { kind: 'beam', beams: 4 }, eosIds: [2] })[0];
  const logprob = (cont: number[]) => {
    const all = [...prompt, ...cont];
    const logits = noGrad(() => model.forward(Int32Array.from(all), 1, all.length)).toArray();
    const V = model.config.vocabSize;
    let s = 0;
    for (let t = prompt.length - 1; t < all.length - 1; t++) {
      const row = logits.slice(t * V, (t + 1) * V);
      const max = Math.max(...row);
      s += row[all[t + 1]] - max - Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
    }
    return s;
  };
  assert.equal(beam4.length, greedy.length, 'both run to the length limit here');
  assert.ok(logprob(beam4) >= logprob(greedy) - 1e-6, `beam ${logprob(beam4)} vs greedy ${logprob(greedy)}`);
});

test('sampling is reproducible from the seed; top-p near 0 is greedy', () => {
  const s = (seed: number) =>
    generate(model, [[1]], { maxNewTokens: 30, strategy: { kind: 'sample', temperature: 1, topP: 0.9, seed }, eosIds: [2] })[0];
  assert.deepEqual(s(5), s(5));
  assert.notDeepEqual(s(5), s(6));
  const nucleus = generate(model, [[1]], {
    maxNewTokens: 30,
    strategy: { kind: 'sample', temperature: 0.7, topP: 1e-9, seed: 1 },
    eosIds: [2],
  })[0];
  const greedy = generate(model, [[1]], { maxNewTokens: 30, strategy: { kind: 'greedy' }, eosIds: [2] })[0];
  assert.deepEqual(nucleus, greedy);
  assert.throws(() => sampleToken([0, 1], { temperature: 0, topP: 1 }, new Rng(1)), /temperature must be > 0/);
});

for (const [name, dir, file] of [
  ['f32', STORIES_F32, 'expected_greedy_256_from_bos.f32.txt'],
  ['bf16', STORIES_BF16, 'expected_greedy_256_from_bos.bf16.txt'],
] as const) {
  test(`greedy 256 tokens from BOS reproduce the reference story byte for byte (${name})`, () => {
    const m = name === 'f32' ? model : loadLlama(dir());
    const tok = loadTokenizer(dir());
    const out = generate(m, [[tok.bosId!]], { maxNewTokens: 256, strategy: { kind: 'greedy' }, eosIds: tok.eosIds })[0];
    const expected = readFileSync(join(ASSETS, 'models', 'stories260K', file), 'utf8');
    // the reference program prints a newline after the generated text, as `lonas generate` does
    assert.equal(`${tok.decode(out)}\n`, expected);
  });
}
