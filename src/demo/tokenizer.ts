/**
 * The demo's own tokenizer: a Llama-style BPE (SentencePiece layout: "▁" marks a space, byte fallback for
 * anything unseen) trained here, deterministically, on the demo's text, and written as Hugging Face
 * tokenizer files that `loadTokenizer` (and transformers) read. So the demo needs no downloaded assets.
 *
 * Merges never cross a word boundary, never touch punctuation and never join letters with digits: whole
 * words and whole numbers become single tokens ("▁couch", "▁12"), while "Option1" stays "▁Option" + "1".
 * With every word one token, copying a word or number from the question is one step for the model, which
 * is what a model of a million parameters can learn in a few minutes.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/files.ts';
import { promptFor } from '../io/prompt.ts';
import { generateSuite } from './tasks.ts';

export const SPACE = '\u2581';
const SPECIALS = ['<unk>', '<s>', '</s>'] as const;
/**
 * Upper bound on the vocabulary: training stops earlier when no pair repeats (the demo's text gives ~630
 * pieces, so every word and number of the tasks is one token).
 */
export const DEMO_VOCAB_SIZE = 1024;

type SymbolClass = 'space' | 'alpha' | 'digit' | 'other';

function classOf(sym: string): SymbolClass {
  const body = sym.startsWith(SPACE) ? sym.slice(1) : sym;
  if (body === '') return 'space';
  if (/^[A-Za-z]+$/.test(body)) return 'alpha';
  if (/^[0-9]+$/.test(body)) return 'digit';
  return 'other';
}

/** Whether two adjacent symbols may merge: a word or a number grows from its leading "▁" rightwards. */
function mergeable(a: string, b: string): boolean {
  if (b.startsWith(SPACE)) return false;
  const ca = classOf(a),
    cb = classOf(b);
  if (cb !== 'alpha' && cb !== 'digit') return false;
  if (ca === 'space') return a === SPACE;
  return ca === cb;
}

/**
 * The tokenizer's normalisation (Llama/SentencePiece: prepend "▁", spaces become "▁"), plus a word boundary
 * after a newline or a slash that is followed by a word: "\nLily" and "option1/option2" tokenize their words
 * as "▁Lily" and "▁option", the same tokens as mid-sentence (decoding removes the added spaces again). Without
 * it, the first word of an instruction or response would be a token the pretraining corpus never shows.
 */
export function normalize(text: string): string {
  return (SPACE + text.replace(/ /g, SPACE)).replace(/\n(?=[^\n\u2581])/g, `\n${SPACE}`).replace(/\/(?=[A-Za-z0-9])/g, `/${SPACE}`);
}

export interface BpeModel {
  /** piece → id (specials, then the 256 byte-fallback tokens, then characters and merged pieces) */
  vocab: Map<string, number>;
  /** "left right" in rank order */
  merges: string[];
}

/**
 * Trains the merges on `texts`: start from characters, repeatedly merge the most frequent allowed pair
 * (ties: the lexicographically smallest) until `vocabSize` pieces or no pair occurs twice.
 */
export function trainBpe(texts: string[], vocabSize = DEMO_VOCAB_SIZE): BpeModel {
  const freq = new Map<string, number>();
  for (const t of texts) {
    for (const chunk of normalize(t).split(/(?=\u2581)/)) if (chunk) freq.set(chunk, (freq.get(chunk) ?? 0) + 1);
  }
  const vocab = new Map<string, number>();
  SPECIALS.forEach((s) => vocab.set(s, vocab.size));
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, vocab.size);
  const chars = new Set<string>();
  const words = [...freq.keys()].sort().map((w) => ({ syms: Array.from(w), n: freq.get(w)! }));
  for (const w of words) for (const c of w.syms) chars.add(c);
  for (const c of [...chars].sort()) vocab.set(c, vocab.size);
  if (vocab.size > vocabSize) throw new Error(`trainBpe: ${chars.size} characters do not fit a vocabulary of ${vocabSize}`);
  const merges: string[] = [];
  while (vocab.size < vocabSize) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        if (!mergeable(w.syms[i], w.syms[i + 1])) continue;
        const key = `${w.syms[i]} ${w.syms[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + w.n);
      }
    }
    let best = '',
      bestN = 1;
    for (const [k, n] of counts)
      if (n > bestN || (n === bestN && n > 1 && k < best)) {
        best = k;
        bestN = n;
      }
    if (bestN < 2) break;
    const [a, b] = best.split(' ');
    const merged = a + b;
    merges.push(best);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        if (w.syms[i] === a && w.syms[i + 1] === b) w.syms.splice(i, 2, merged);
      }
    }
  }
  return { vocab, merges };
}

/** tokenizer.json (Hugging Face tokenizers format, the layout of Llama 2 / stories260K). */
export function tokenizerJson(m: BpeModel): object {
  const added = SPECIALS.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
        { type: 'Replace', pattern: { Regex: '\\n(?=[^\\n\u2581])' }, content: `\n${SPACE}` },
        { type: 'Replace', pattern: { Regex: '/(?=[A-Za-z0-9])' }, content: `/${SPACE}` },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Replace', pattern: { String: '\n ' }, content: '\n' },
        { type: 'Replace', pattern: { String: '/ ' }, content: '/' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(m.vocab),
      merges: m.merges,
    },
  };
}

const TOKENIZER_CONFIG = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  pad_token: null,
  clean_up_tokenization_spaces: false,
  legacy: true,
  model_max_length: 512,
  tokenizer_class: 'LlamaTokenizer',
  sp_model_kwargs: {},
  spaces_between_special_tokens: false,
};

/**
 * The text the demo tokenizer is trained on: pretraining documents and instruction-formatted examples of
 * both tasks from a fixed seed (every word list entry occurs; the Alpaca template is frequent, so its words
 * become single tokens too). Independent of the demo's seed, so every demo run shares one tokenizer.
 */
export function tokenizerTrainingText(): string[] {
  const s = generateSuite(0, { pretrainDocs: 3000, train: 300, val: 0, test: 0 });
  return [...s.pretrain, ...s.train.map((e) => promptFor(e, { withResponse: true }))];
}

/** The demo tokenizer's files by name: tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json. */
export function demoTokenizerFiles(vocabSize = DEMO_VOCAB_SIZE): Record<string, string> {
  const model = trainBpe(tokenizerTrainingText(), vocabSize);
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  return {
    'tokenizer.json': json(tokenizerJson(model)),
    'tokenizer_config.json': json(TOKENIZER_CONFIG),
    'special_tokens_map.json': json({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }),
    'generation_config.json': json({ bos_token_id: 1, eos_token_id: 2 }),
  };
}

/** Writes the demo tokenizer's files (see demoTokenizerFiles) into dir. */
export function writeDemoTokenizer(dir: string, files: Record<string, string> = demoTokenizerFiles()): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileAtomic(join(dir, name), text);
}
