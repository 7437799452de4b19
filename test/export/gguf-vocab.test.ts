/**
 * A GPT-2-style byte-level BPE tokenizer (SmolLM's pre-tokenizer: single digits + byte-level regex), trained
 * here on a few sentences, embedded in a GGUF file: llama.cpp splits text into the same token ids as lonas
 * (Hugging Face tokenizers), keeps the special tokens and the chat template, and a random model with an
 * untied head generates the same greedy tokens.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';
import { openGguf } from '../engines/llama-cpp/engine.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-gguf-vocab-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** GPT-2's reversible byte → printable character map. */
function bytesToUnicode(): string[] {
  const keep = [...Array(256).keys()].filter((b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174);
  let extra = 0;
  return [...Array(256).keys()].map((b) => String.fromCodePoint(keep.includes(b) ? b : 256 + extra++));
}

const CORPUS =
  'the cat sat on the mat. the dog sat on the log. 12 cats and 34 dogs sat there, the end! ' +
  'Ünïcödé words: café, naïve, 東京 and emoji 🙂 are bytes too.';

/** Merges learnt on CORPUS words (space attached as "Ġ", as the byte-level pre-tokenizer yields them). */
function trainBpe(n: number): { vocab: Record<string, number>; merges: string[] } {
  const b2u = bytesToUnicode();
  const vocab: Record<string, number> = {};
  b2u.forEach((c, i) => (vocab[c] = i));
  const words = (CORPUS.match(/ ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+/gu) ?? []).map((w) =>
    [...Buffer.from(w, 'utf8')].map((b) => b2u[b]),
  );
  const merges: string[] = [];
  for (let k = 0; k < n; k++) {
    const counts = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.length; i++) {
        const p = `${w[i]} ${w[i + 1]}`;
        counts.set(p, (counts.get(p) ?? 0) + 1);
      }
    const best = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
    if (!best || best[1] < 2) break;
    const [a, b] = best[0].split(' ');
    merges.push(best[0]);
    vocab[a + b] = Object.keys(vocab).length;
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b);
  }
  return { vocab, merges };
}

function writeModel(): { modelDir: string; vocabSize: number } {
  const { vocab, merges } = trainBpe(80);
  const eos = Object.keys(vocab).length;
  const vocabSize = eos + 1;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: eos, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Digits', individual_digits: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const modelDir = join(dir, 'model');
  saveModelDir(modelDir, tinyModel(4, tinyConfig({ vocabSize, tieWordEmbeddings: false })));
  writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(
    join(modelDir, 'tokenizer_config.json'),
    JSON.stringify({
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      add_bos_token: false,
      chat_template: "{% for m in messages %}<|endoftext|>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
    }),
  );
  return { modelDir, vocabSize };
}

test('byte-level BPE: llama.cpp tokenizes like lonas, keeps specials, merges and the chat template', async () => {
  const { modelDir, vocabSize } = writeModel();
  const out = join(dir, 'bpe.gguf');
  exportGguf(modelDir, out, 'f32');
  const tok = loadTokenizer(modelDir);
  const s = await openGguf(out);
  try {
    const md = s.model.fileInfo.metadata as unknown as { tokenizer: { ggml: Record<string, unknown>; chat_template: string } };
    assert.equal(md.tokenizer.ggml.model, 'gpt2');
    assert.equal(md.tokenizer.ggml.pre, 'smollm');
    assert.equal((md.tokenizer.ggml.merges as string[]).length, trainBpe(80).merges.length);
    assert.equal(md.tokenizer.ggml.eos_token_id, vocabSize - 1);
    assert.match(md.tokenizer.chat_template, /m\['role'\]/);
    for (const text of [
      'the cat sat on the mat.',
      'There were 1234 dogs,  and 5 cats!',
      'café naïve 東京 🙂',
      ' leading space\nand a newline',
    ]) {
      assert.deepEqual(s.tokenize(text), tok.encode(text, { addBos: false }), JSON.stringify(text));
    }
    const prompt = tok.encode('the dog sat', { addBos: false });
    const model = loadLlama(modelDir);
    const ours = generate(model, [prompt], { maxNewTokens: 24, strategy: { kind: 'greedy' }, eosIds: [] })[0];
    assert.deepEqual(await s.greedy(prompt, 24), ours);
  } finally {
    await s.dispose();
  }
});
