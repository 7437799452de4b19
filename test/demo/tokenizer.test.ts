/** The demo tokenizer: deterministic, loadable by loadTokenizer, words and numbers as single tokens, lossless. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoTokenizerFiles, normalize, trainBpe, writeDemoTokenizer } from '../../src/demo/tokenizer.ts';
import { generateSuite } from '../../src/demo/tasks.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { promptFor } from '../../src/io/prompt.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-demo-tok-'));
writeDemoTokenizer(dir);
const tok = loadTokenizer(dir);
const pieces = (text: string) => tok.encode(text, { addBos: false }).map((id) => tok.decode([id]));

test('deterministic, Llama-style special tokens, written as Hugging Face files', () => {
  assert.deepEqual(demoTokenizerFiles(), demoTokenizerFiles());
  assert.equal(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), demoTokenizerFiles()['tokenizer.json']);
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.eosIds, [2]);
  assert.equal(tok.padId, null);
  assert.deepEqual(tok.encode('7 + 5'), [1, ...tok.encode('7 + 5', { addBos: false })]); // BOS by default, no EOS
  assert.ok(tok.vocabSize > 259 && tok.vocabSize <= 1024, `vocabulary ${tok.vocabSize}`);
});

test('task words and numbers are single tokens, also after a newline or a slash', () => {
  assert.deepEqual(pieces('Ella had 17 shells. She found 8 more shells.'), [
    'Ella',
    'had',
    '17',
    'shells',
    '.',
    'She',
    'found',
    '8',
    'more',
    'shells',
    '.',
  ]);
  assert.deepEqual(pieces('Answer format: option1/option2'), ['Answer', 'format', ':', 'option', '1', '/', 'option', '2']);
  const a = tok.encode('coins\nLily has 3 coins', { addBos: false }),
    b = tok.encode('coins Lily has 3 coins', { addBos: false });
  assert.equal(a.length, b.length + 1);
  assert.deepEqual(a.slice(2), b.slice(1), 'a word after a newline is the same token as after a space');
  assert.deepEqual(pieces('the correct answer is option2'), ['the', 'correct', 'answer', 'is', 'option', '2']);
  for (let n = 1; n <= 18; n++) assert.equal(pieces(`is ${n}.`).length, 3, `${n} is one token`);
});

test('decoding restores the text exactly (task prompts, unseen characters through byte fallback)', () => {
  const s = generateSuite(4, { pretrainDocs: 20, train: 20, val: 0, test: 20 });
  const texts = [
    ...s.pretrain,
    ...s.tasks.arith.test.map((e) => promptFor(e, { withResponse: true })),
    ...s.tasks.choice.test.map((e) => promptFor(e, { withResponse: true })),
  ];
  for (const t of [...texts, 'Grüße, 🙂 — zebra quux! a/b', 'line\n\nnext']) assert.equal(tok.decode(tok.encode(t, { addBos: false })), t);
  assert.ok(
    tok
      .encode('🙂', { addBos: false })
      .slice(1)
      .every((id) => id >= 3 && id < 259),
    'byte fallback tokens after the leading "▁"',
  );
});

test('trainBpe: merges stay inside words, never join letters with digits or touch punctuation', () => {
  assert.equal(normalize('a b\nc/d'), '\u2581a\u2581b\n\u2581c/\u2581d');
  const m = trainBpe(['ab1 ab1 ab1, ab1.', 'ab1 12 12 12'], 300);
  for (const merge of m.merges) {
    const [l, r] = merge.split(' ');
    assert.ok(!r.startsWith('\u2581'), merge);
    const kind = (x: string) => (/\d/.test(x) ? 'digit' : /[a-z]/.test(x) ? 'alpha' : x === '\u2581' ? 'space' : 'other');
    assert.ok(kind(l) === 'space' || kind(l) === kind(r), merge);
  }
  assert.ok(m.vocab.has('\u2581ab') && m.vocab.has('\u258112') && !m.vocab.has('\u2581ab1'));
});
