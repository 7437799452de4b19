/** The model backend on stories260K: batched scoring equals one-sequence-at-a-time scoring; batching and context limits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { modelBackend } from '../../src/eval/backend.ts';
import { loadTasks } from '../../src/eval/tasks.ts';
import { LABEL_RESPONSE, optionsFor } from '../../src/eval/choices.ts';
import { promptFor } from '../../src/io/prompt.ts';
import { noGrad } from '../../src/tensor/index.ts';
import { generate } from '../../src/models/llama/generate.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';

const model = loadLlama(STORIES_F32());
const tok = loadTokenizer(STORIES_F32());
const backend = modelBackend(model, tok);

/** log P(full[m:] | full[:m]) with one plain forward over the whole sequence. */
function referenceLogprob(m: LlamaModel, full: number[], start: number): number {
  const logits = noGrad(() => m.forward(Int32Array.from(full), 1, full.length));
  const V = logits.shape[2];
  const d = logits.contiguousData();
  let total = 0;
  for (let t = start; t < full.length; t++) {
    const row = d.subarray((t - 1) * V, t * V);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - max);
    total += row[full[t]] - max - Math.log(s);
  }
  return total;
}

test('scoring a batch (shared prompt pass, padded rows) equals scoring each sequence alone', () => {
  const tasks = loadTasks(['boolq', 'ARC-Challenge', 'winogrande', 'piqa'], asset('datasets', 'llm-adapters', 'dataset'));
  const requests = tasks.flatMap((t) =>
    t.examples.slice(0, 2).map((e) => {
      const labels = (t.answer as { labels: readonly string[] }).labels;
      const opts = optionsFor(e, labels);
      // mix label responses and option texts: continuations of very different lengths
      return {
        prompt: promptFor(e, { withResponse: false }),
        continuations: opts.map((o, i) => (i % 2 ? o.text! : LABEL_RESPONSE(o.label))),
      };
    }),
  );
  const scored = backend.score(requests);
  assert.equal(scored.length, requests.length);
  requests.forEach((r, i) => {
    const promptIds = tok.encode(r.prompt, { addBos: true });
    r.continuations.forEach((c, j) => {
      const full = tok.encode(r.prompt + c, { addBos: true });
      assert.deepEqual(full.slice(0, promptIds.length), promptIds, 'the prompt tokens are a prefix here');
      const want = referenceLogprob(model, full, promptIds.length);
      const got = scored[i].scores[j];
      assert.equal(got.tokens, full.length - promptIds.length);
      assert.ok(
        Math.abs(got.logprob - want) < 2e-3 * Math.max(1, Math.abs(want) / 10),
        `request ${i} option ${j}: ${got.logprob} vs ${want}`,
      );
    });
  });
  // batch composition does not change a score
  const alone = backend.score([requests[3]])[0];
  alone.scores.forEach((s, j) => assert.ok(Math.abs(s.logprob - scored[3].scores[j].logprob) < 1e-3));
});

test('batched greedy generation gives the same continuations as one prompt at a time', () => {
  const [task] = loadTasks(['social_i_qa'], asset('datasets', 'llm-adapters', 'dataset'));
  const prompts = task.examples.slice(0, 5).map((e) => promptFor(e, { withResponse: false }));
  const batched = backend.generate(prompts, { maxNewTokens: 16, beams: 1 });
  const single = prompts.map((p) => backend.generate([p], { maxNewTokens: 16, beams: 1 })[0]);
  assert.deepEqual(
    batched.map((g) => g.text),
    single.map((g) => g.text),
  );
  const ids = tok.encode(prompts[0], { addBos: true });
  assert.equal(
    batched[0].text,
    tok.decode(generate(model, [ids], { maxNewTokens: 16, strategy: { kind: 'greedy' }, eosIds: tok.eosIds })[0], {
      skipSpecialTokens: true,
    }),
  );
  assert.ok(batched.every((g) => !g.note && g.promptTokens! > 100));
  const beam = backend.generate(prompts.slice(0, 1), { maxNewTokens: 8, beams: 2 });
  assert.equal(beam.length, 1);
});

test('context limits: a budget the context cannot hold is cut (alone); a prompt that fills it is skipped', () => {
  const maxPos = model.config.maxPositions;
  const words = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? 'cat' : 'dog')).join(' ');
  let long = words(10);
  while (tok.encode(long, { addBos: true }).length < maxPos - 20) long += ' dog cat';
  let tooLong = long;
  while (tok.encode(tooLong, { addBos: true }).length < maxPos + 5) tooLong += ' dog cat';
  const [short, near, over] = backend.generate([words(5), long, tooLong], { maxNewTokens: 64, beams: 1 });
  assert.equal(short.note, undefined);
  const room = maxPos - tok.encode(long, { addBos: true }).length;
  assert.equal(near.clamped, true);
  assert.match(near.note!, new RegExp(`max new tokens cut to ${room} by the model's ${maxPos} positions`));
  assert.equal(over.skipped, true);
  assert.equal(over.text, '');
  const scored = backend.score([
    { prompt: tooLong, continuations: ['a', 'b'] },
    { prompt: words(5), continuations: [' dog', ' cat'] },
  ]);
  assert.equal(scored[0].skipped, true);
  assert.match(scored[0].note!, /more than the model's 512 positions/);
  assert.ok(scored[1].scores.every((s) => Number.isFinite(s.logprob) && s.logprob < 0));
});
