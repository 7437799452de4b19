/** Tokenizer: real Llama tokenizer files (read in place), BOS/EOS, round trips, streaming decode, chat templates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IncrementalDecoder, loadTokenizer, type LonasTokenizer } from '../../src/io/tokenizer.ts';

const assets = process.env.LONAS_ASSETS ?? fileURLToPath(new URL('../../../shared/assets', import.meta.url));
const storiesDir = join(assets, 'models/stories260K/hf-f32');
const llama2Dir = join(assets, 'tokenizers/llama2-hf-generated');
const stories = loadTokenizer(storiesDir);
const llama2 = loadTokenizer(llama2Dir);

const texts = [
  'Once upon a time',
  'Hello world',
  ' one leading space',
  '  two leading spaces',
  'trailing space ',
  'trailing newlines\n\n',
  '\nleading newline',
  'tabs\tand\r\nCRLF',
  'café é naïve',
  'emoji 😀🎉 done',
  '中文字符 mixed with English',
  'x',
  '',
];

test('special ids and vocab sizes', () => {
  assert.equal(stories.vocabSize, 512);
  assert.equal(stories.bosId, 1);
  assert.deepEqual(stories.eosIds, [2]);
  assert.equal(stories.padId, null);
  assert.equal(llama2.vocabSize, 32000);
  assert.equal(llama2.bosId, 1);
  assert.deepEqual(llama2.eosIds, [2]);
});

test('Llama-2 32k: known ids (transformers LlamaTokenizerFast, legacy=true)', () => {
  assert.deepEqual(llama2.encode('Hello world'), [1, 15043, 3186]);
  assert.deepEqual(llama2.encode('Once upon a time'), [1, 9038, 2501, 263, 931]);
  // SentencePiece-style: "▁" is prepended, so a leading space becomes a lone "▁" (29871); "\n" is byte <0x0A> (13)
  assert.deepEqual(llama2.encode(' lead', { addBos: false }), [29871, 3275]);
  assert.deepEqual(llama2.encode('trail \n', { addBos: false }), [26203, 29871, 13]);
  // emoji via byte fallback (<0xF0><0x9F><0x98><0x80> = ids byte+3); CJK are whole tokens
  assert.deepEqual(llama2.encode('😀 中文', { addBos: false }), [29871, 243, 162, 155, 131, 29871, 30275, 30333]);
  // special tokens written in the text are recognised, as in transformers
  assert.deepEqual(llama2.encode('<s>Hello</s>', { addBos: false }), [1, 15043, 2]);
});

test('BOS exactly once by default (add_bos_token), none with addBos:false, EOS on request', () => {
  for (const tok of [stories, llama2]) {
    const ids = tok.encode('Once upon a time');
    assert.equal(ids[0], 1);
    assert.equal(ids.filter((i) => i === 1).length, 1, 'a second BOS from the post-processor');
    assert.deepEqual(tok.encode('Once upon a time', { addBos: false }), ids.slice(1));
    assert.deepEqual(tok.encode('Once upon a time', { addEos: true }), [...ids, 2]);
    assert.deepEqual(tok.encode(''), [1]);
    assert.deepEqual(tok.encode('', { addBos: false }), []);
  }
  assert.deepEqual(stories.encode('Once upon a time'), [1, 403, 407, 261, 378]);
});

test('decode(encode(x)) round-trips, with and without the BOS', () => {
  for (const tok of [stories, llama2]) {
    for (const t of texts) {
      assert.equal(tok.decode(tok.encode(t, { addBos: false })), t, JSON.stringify(t));
      assert.equal(tok.decode(tok.encode(t), { skipSpecialTokens: true }), t, JSON.stringify(t));
    }
    // as transformers: the special token is printed and the first word keeps its space
    assert.equal(tok.decode(tok.encode('Once upon a time')), '<s> Once upon a time');
    assert.equal(tok.decode([]), '');
  }
});

function stream(tok: LonasTokenizer, ids: number[], opts: { skipSpecialTokens?: boolean; context?: number[] } = {}) {
  const dec = new IncrementalDecoder(tok, opts);
  const pieces = ids.map((id) => dec.push(id));
  pieces.push(dec.flush());
  return { pieces, dec };
}

test('IncrementalDecoder: pieces join to the full decode, never a U+FFFD', () => {
  const text = 'Hi 😀 there 🎉🎉 café 中文!\nbye';
  for (const tok of [stories, llama2]) {
    for (const skipSpecialTokens of [false, true]) {
      const ids = tok.encode(text, { addEos: true });
      const { pieces, dec } = stream(tok, ids, { skipSpecialTokens });
      assert.equal(pieces.join(''), tok.decode(ids, { skipSpecialTokens }));
      assert.equal(dec.printed, pieces.join(''));
      for (const p of pieces) assert.ok(!p.includes('\uFFFD'), JSON.stringify(p));
      // the 4 byte tokens of 😀 yield nothing until the last one
      assert.ok(pieces.filter((p) => p === '').length >= 3);
    }
  }
});

test('IncrementalDecoder: context ids give the first new token its leading space', () => {
  const ids = llama2.encode('Once upon a time there was');
  const { pieces } = stream(llama2, ids.slice(5), { context: ids.slice(0, 5), skipSpecialTokens: true });
  assert.equal(pieces.join(''), ' there was');
  // without context the decoder strips the first token's space, like decode(ids.slice(5))
  assert.equal(stream(llama2, ids.slice(5)).pieces.join(''), 'there was');
  // a stream cut inside a character: held back until flush
  const cut = llama2.encode('a😀', { addBos: false }).slice(0, -1);
  const { pieces: p2 } = stream(llama2, cut);
  assert.equal(p2.slice(0, -1).join(''), 'a');
  assert.ok(p2[p2.length - 1].includes('\uFFFD'));
});

const llama2Template =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
const chatmlTemplate =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

function dirWithConfig(config: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-tok-'));
  copyFileSync(join(storiesDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

test('chat templates: Llama-2 with bos/eos tokens, ChatML with a generation prompt', () => {
  const base = { add_bos_token: true, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' };
  const tok = loadTokenizer(dirWithConfig({ ...base, chat_template: llama2Template }));
  const chat = [
    { role: 'user', content: 'Hi there' },
    { role: 'assistant', content: 'Hello!' },
  ];
  const s = tok.applyChatTemplate(chat);
  assert.equal(s, '<s>[INST] Hi there [/INST] Hello! </s>');
  assert.equal(
    tok.applyChatTemplate([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]),
    '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]',
  );
  assert.throws(() => tok.applyChatTemplate([chat[0], chat[0]]), /Conversation roles must alternate/);
  // the rendered BOS/EOS strings become the special ids; encode with addBos:false to avoid a second BOS
  const ids = tok.encode(s, { addBos: false });
  assert.equal(ids[0], 1);
  assert.equal(ids.filter((i) => i === 1).length, 1);
  assert.equal(ids[ids.length - 1], 2);

  const chatml = loadTokenizer(dirWithConfig({ ...base, chat_template: chatmlTemplate }));
  assert.equal(
    chatml.applyChatTemplate(chat, { addGenerationPrompt: true }),
    '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n',
  );
  const named = loadTokenizer(dirWithConfig({ ...base, chat_template: [{ name: 'default', template: chatmlTemplate }] }));
  assert.equal(named.applyChatTemplate([chat[0]]), '<|im_start|>user\nHi there<|im_end|>\n');
});

test('clear errors: no chat template, no tokenizer.json, malformed JSON', () => {
  assert.throws(() => stories.applyChatTemplate([{ role: 'user', content: 'hi' }]), /has no chat template.*plain prompt/);
  const empty = mkdtempSync(join(tmpdir(), 'lonas-tok-'));
  assert.throws(() => loadTokenizer(empty), {
    message: `${empty}: no tokenizer.json found; lonas needs a Hugging Face fast-tokenizer file (tokenizer.json) beside the model`,
  });
  assert.throws(
    () => loadTokenizer(join(empty, 'missing')),
    /missing: no such model directory; pass the directory of a Hugging Face model/,
  );
  const bad = dirWithConfig({});
  writeFileSync(join(bad, 'tokenizer_config.json'), '{"add_bos_token": tru');
  assert.throws(
    () => loadTokenizer(bad),
    (e: Error) => e.message.startsWith(`${join(bad, 'tokenizer_config.json')}: malformed JSON`),
  );
  writeFileSync(join(bad, 'tokenizer.json'), '[1, 2');
  assert.throws(
    () => loadTokenizer(bad),
    (e: Error) => e.message.startsWith(`${join(bad, 'tokenizer.json')}: malformed JSON`),
  );
});

test('without add_bos_token (or without tokenizer_config.json), BOS follows the tokenizer.json post-processor', () => {
  const tok = loadTokenizer(dirWithConfig({ bos_token: '<s>', eos_token: '</s>' }));
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  const none = loadTokenizer(dirWithConfig({ bos_token: '<s>', add_bos_token: false }));
  assert.deepEqual(none.encode('Once upon a time'), [403, 407, 261, 378]);
  // tokenizer.json alone (as PreTrainedTokenizerFast): the post-processor's "<s>" is the BOS
  const bare = mkdtempSync(join(tmpdir(), 'lonas-tok-'));
  copyFileSync(join(storiesDir, 'tokenizer.json'), join(bare, 'tokenizer.json'));
  const t = loadTokenizer(bare);
  assert.equal(t.bosId, 1);
  assert.deepEqual(t.eosIds, []);
  assert.deepEqual(t.encode('Once upon a time'), [1, 403, 407, 261, 378]);
});
