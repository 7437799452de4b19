/**
 * The tokenizer of a model directory as GGUF `tokenizer.ggml.*` metadata, from tokenizer.json (+
 * tokenizer_config.json, config.json for the special ids), in one of llama.cpp's two BPE flavours:
 *  - "llama" (SentencePiece-style: "▁" for spaces, byte fallback `<0xXX>`): tokens, scores, token types.
 *    llama.cpp's SPM tokenizer merges the adjacent pair whose joined text has the highest score; a
 *    tokenizer.json holds merge ranks instead, so a token made by merge k gets score −k, and llama.cpp then
 *    merges in the order the BPE merges would (the tests compare token ids with lonas's tokenizer).
 *    Tokens no merge produces (bytes, specials, single characters) score 0; they never form from a pair.
 *  - "gpt2" (byte-level BPE): tokens, token types, merges, and the pre-tokenizer name llama.cpp keys its
 *    splitting regex on, recognised from the pre_tokenizer of tokenizer.json (unknown ones are refused).
 * Token types: 1 normal, 2 unknown, 3 control (special added tokens), 4 user-defined (other added tokens),
 * 5 unused (padding up to the model's vocab_size), 6 byte.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GgufValue } from './writer.ts';
import { bool, str, u32 } from './writer.ts';

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}
interface TokenizerJson {
  model: {
    type: string;
    vocab: Record<string, number>;
    merges?: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string | null;
  };
  added_tokens?: AddedToken[];
  normalizer?: { type: string; normalizers?: { type: string; prepend?: string }[]; prepend?: string } | null;
  pre_tokenizer?: PreTokenizer | null;
  post_processor?: { type: string; single?: ({ SpecialToken?: { id: string } } | { Sequence?: unknown })[] } | null;
}
interface PreTokenizer {
  type: string;
  pretokenizers?: PreTokenizer[];
  pattern?: { Regex?: string; String?: string };
  individual_digits?: boolean;
  use_regex?: boolean;
  prepend_scheme?: string;
  add_prefix_space?: boolean;
}

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** llama.cpp's pre-tokenizer name for a byte-level BPE pre_tokenizer, or null when it is not one lonas knows. */
export function preTokenizerName(p: PreTokenizer | null | undefined): string | null {
  if (!p) return null;
  const parts = p.type === 'Sequence' ? (p.pretokenizers ?? []) : [p];
  const kinds = parts.map((q) => q.type).join(',');
  const regex = parts.find((q) => q.type === 'Split')?.pattern?.Regex;
  if (kinds === 'Split,ByteLevel' && regex === LLAMA3_SPLIT) return 'llama-bpe';
  if (kinds === 'Split,ByteLevel' && regex === QWEN2_SPLIT) return 'qwen2';
  if (kinds === 'Digits,ByteLevel' && parts[0].individual_digits && parts[1].use_regex !== false) return 'smollm';
  if (kinds === 'ByteLevel' && p.use_regex !== false) return 'gpt-2';
  return null;
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new Error(
      `${path}: cannot read the tokenizer (${(e as Error).message}); the model directory needs the tokenizer files lonas extract copies`,
    );
  }
}

/** Token strings by id: the model vocabulary, added tokens, and `[PADn]` up to `vocabSize`. */
function tokenList(t: TokenizerJson, vocabSize: number, file: string): { tokens: string[]; added: Map<number, AddedToken> } {
  const added = new Map((t.added_tokens ?? []).map((a) => [a.id, a]));
  const byId = new Map<number, string>();
  for (const [s, id] of Object.entries(t.model.vocab)) byId.set(id, s);
  for (const a of added.values()) byId.set(a.id, a.content);
  const maxId = Math.max(-1, ...byId.keys());
  if (maxId >= vocabSize)
    throw new Error(
      `${file}: token id ${maxId} is outside the model's vocab_size ${vocabSize} (config.json and tokenizer.json do not match)`,
    );
  const tokens: string[] = [];
  for (let id = 0; id < vocabSize; id++) tokens.push(byId.get(id) ?? `[PAD${id}]`);
  return { tokens, added };
}

type Specials = Partial<Record<'bos' | 'eos' | 'unk' | 'pad', number>>;

function specialIds(
  dir: string,
  tokens: string[],
  t: TokenizerJson,
): { ids: Specials; addBos: boolean; addEos: boolean; chatTemplate: string | null } {
  const optional = (f: string) => (existsSync(join(dir, f)) ? readJson<Record<string, unknown>>(join(dir, f)) : {});
  const tc = { ...optional('special_tokens_map.json'), ...optional('tokenizer_config.json') };
  const cfg = optional('config.json');
  const index = new Map(tokens.map((s, i) => [s, i]));
  const ids: Specials = {};
  for (const k of ['bos', 'eos', 'unk', 'pad'] as const) {
    const v = tc[`${k}_token`];
    const text = typeof v === 'string' ? v : v && typeof v === 'object' ? (v as { content?: string }).content : undefined;
    const fromCfg = cfg[`${k}_token_id`];
    const id = text !== undefined ? index.get(text) : Array.isArray(fromCfg) ? fromCfg[0] : fromCfg;
    if (typeof id === 'number') ids[k] = id;
  }
  if (ids.unk === undefined && t.model.unk_token) ids.unk = index.get(t.model.unk_token);
  const first = t.post_processor?.type === 'TemplateProcessing' ? t.post_processor.single?.[0] : undefined;
  const addBos = typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : !!first && 'SpecialToken' in first;
  const addEos = typeof tc.add_eos_token === 'boolean' ? tc.add_eos_token : false;
  let chatTemplate: string | null = null;
  const ct = tc.chat_template;
  if (typeof ct === 'string') chatTemplate = ct;
  else if (Array.isArray(ct))
    chatTemplate = (ct as { name: string; template: string }[]).find((x) => x.name === 'default')?.template ?? null;
  else if (existsSync(join(dir, 'chat_template.jinja'))) chatTemplate = readFileSync(join(dir, 'chat_template.jinja'), 'utf8');
  return { ids, addBos, addEos, chatTemplate };
}

const mergeText = (m: string | [string, string]) => (typeof m === 'string' ? m : m.join(' '));

/** The tokenizer metadata for the model in `dir` (vocab_size: rows of its embedding). */
export function tokenizerMetadata(dir: string, vocabSize: number): Map<string, GgufValue> {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file))
    throw new Error(`${file}: missing (GGUF embeds the tokenizer; copy tokenizer.json and tokenizer_config.json from the base model)`);
  const t = readJson<TokenizerJson>(file);
  if (t.model?.type !== 'BPE')
    throw new Error(
      `${file}: model.type "${t.model?.type}" is not supported (lonas exports BPE tokenizers: SentencePiece-style with byte_fallback, or GPT-2 byte-level)`,
    );
  const { tokens, added } = tokenList(t, vocabSize, file);
  const special = specialIds(dir, tokens, t);
  const merges = (t.model.merges ?? []).map(mergeText);
  const md = new Map<string, GgufValue>();
  const types = new Int32Array(tokens.length);
  const spm = !!t.model.byte_fallback;
  tokens.forEach((s, id) => {
    const a = added.get(id);
    types[id] =
      id === special.ids.unk && spm
        ? 2
        : a
          ? a.special
            ? 3
            : 4
          : s.startsWith('[PAD') && !(s in t.model.vocab)
            ? 5
            : spm && /^<0x[0-9A-Fa-f]{2}>$/.test(s)
              ? 6
              : 1;
  });
  if (spm) {
    const scores = new Float32Array(tokens.length);
    const rank = new Map<string, number>();
    merges.forEach((m, k) => {
      const joined = m.replace(' ', '');
      if (!rank.has(joined)) rank.set(joined, k);
    });
    tokens.forEach((s, id) => {
      const k = rank.get(s);
      scores[id] = types[id] === 1 && k !== undefined ? -k : 0;
    });
    md.set('tokenizer.ggml.model', str('llama'));
    md.set('tokenizer.ggml.pre', str('default'));
    md.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
    md.set('tokenizer.ggml.scores', { type: 'f32[]', value: scores });
    md.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    md.set('tokenizer.ggml.add_space_prefix', bool(addsSpacePrefix(t)));
  } else {
    const pre = preTokenizerName(t.pre_tokenizer);
    if (!pre)
      throw new Error(
        `${file}: pre_tokenizer ${JSON.stringify(t.pre_tokenizer)?.slice(0, 160)} is not one lonas maps to llama.cpp (known: Llama-3 and Qwen2 Split+ByteLevel, SmolLM Digits+ByteLevel, GPT-2 ByteLevel); convert this model with llama.cpp's convert_hf_to_gguf.py`,
      );
    md.set('tokenizer.ggml.model', str('gpt2'));
    md.set('tokenizer.ggml.pre', str(pre));
    md.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
    md.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    md.set('tokenizer.ggml.merges', { type: 'string[]', value: merges });
  }
  for (const k of ['bos', 'eos', 'unk', 'pad'] as const) {
    const id = special.ids[k];
    if (id !== undefined) md.set(`tokenizer.ggml.${k === 'unk' ? 'unknown' : k === 'pad' ? 'padding' : k}_token_id`, u32(id));
  }
  md.set('tokenizer.ggml.add_bos_token', bool(special.addBos));
  md.set('tokenizer.ggml.add_eos_token', bool(special.addEos));
  if (special.chatTemplate) md.set('tokenizer.chat_template', str(special.chatTemplate));
  return md;
}

/** SentencePiece's dummy prefix: a "▁" prepended by the normalizer or by a Metaspace pre-tokenizer. */
function addsSpacePrefix(t: TokenizerJson): boolean {
  const n = t.normalizer;
  const norms = n ? (n.type === 'Sequence' ? (n.normalizers ?? []) : [n]) : [];
  if (norms.some((x) => x.type === 'Prepend' && x.prepend === '\u2581')) return true;
  const p = t.pre_tokenizer;
  const pres = p ? (p.type === 'Sequence' ? (p.pretokenizers ?? []) : [p]) : [];
  return pres.some((x) => x.type === 'Metaspace' && (x.prepend_scheme ? x.prepend_scheme !== 'never' : x.add_prefix_space !== false));
}
