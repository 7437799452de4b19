/**
 * The golden HF model layouts (test/golden/fixtures/models: GQA, tied θ = 1e6, llama3 and linear RoPE scaling,
 * Qwen2 q/k/v biases, Mistral head_dim ≠ hidden/heads, BF16 storage, sharded) exported to GGUF f32 compute in
 * llama.cpp what they compute in lonas: log-probabilities of every position of the fixture's input within 1e-4.
 * The fixtures have no tokenizer; a SentencePiece-style one of the right size (specials, ASCII, byte tokens)
 * is written beside a copy, since llama.cpp needs a vocabulary to load a model (ids are fed directly).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { openGguf } from '../engines/llama-cpp/engine.ts';
import { lonasLogProbs, maxAbsDiff } from './gguf-helpers.ts';

const ROOT = fileURLToPath(new URL('../golden/fixtures/models', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'lonas-gguf-layouts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function byteTokenizer(vocabSize: number): object {
  // specials, "▁", the printable ASCII characters, then byte tokens <0x00>, <0x01>, … for the rest
  const pieces = [
    '<unk>',
    '<s>',
    '</s>',
    '\u2581',
    ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(33 + i)).filter((c) => c !== ' '),
  ];
  for (let b = 0; pieces.length < vocabSize; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const vocab = Object.fromEntries(pieces.slice(0, vocabSize).map((p, i) => [p, i]));
  return {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: [] },
  };
}

for (const name of readdirSync(ROOT).sort()) {
  test(`${name}: llama.cpp computes the exported model as lonas does`, async () => {
    const dir = join(tmp, name);
    cpSync(join(ROOT, name), dir, { recursive: true });
    const model = loadLlama(dir);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizer(model.config.vocabSize)));
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true }),
    );
    const out = join(tmp, `${name}.gguf`);
    const report = exportGguf(dir, out, 'f32');
    assert.equal(report.arch, name === 'qwen2_bias' ? 'qwen2' : 'llama');
    const fx = new SafetensorsFile(join(dir, 'expected.safetensors'));
    const { data, shape } = fx.readInt32('input_ids');
    fx.close();
    const ids = [...data.subarray(0, shape[1])];
    const s = await openGguf(out, { contextSize: 64 });
    try {
      const diff = maxAbsDiff(await s.logProbs(ids), lonasLogProbs(model, ids));
      assert.ok(diff < 1e-4, `${name}: log-probabilities differ by ${diff} (limit 1e-4)`);
    } finally {
      await s.dispose();
    }
  });
}
