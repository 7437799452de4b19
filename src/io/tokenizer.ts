/**
 * Hugging Face fast-tokenizer loading (tokenizer.json + tokenizer_config.json) on top of
 * @huggingface/tokenizers, with chat templates rendered by @huggingface/jinja.
 *
 * BOS/EOS follow transformers: the library's post-processor is never run (we always encode with
 * add_special_tokens=false) and BOS/EOS are added here, by default iff tokenizer_config says
 * `add_bos_token` / `add_eos_token`; when a flag is absent we use what tokenizer.json's own
 * TemplateProcessing post-processor would add, which is what PreTrainedTokenizerFast does.
 * So a Llama tokenizer gives exactly one BOS at the start.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface LonasTokenizer {
  /** 1 + the highest token id, added tokens included (rows the embedding needs). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  /** every id that ends generation: generation_config's eos_token_id (may be a list) and the tokenizer's eos_token */
  readonly eosIds: number[];
  readonly padId: number | null;
  encode(text: string, opts?: { addBos?: boolean; addEos?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /**
   * Renders the tokenizer_config chat_template. If the template writes the BOS token itself (most
   * do), encode the result with {addBos: false}, as transformers' apply_chat_template does.
   */
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
  tokenToId(token: string): number | null;
}

// biome-ignore lint/suspicious/noExplicitAny: tokenizer JSON of any shape, validated field by field where read
type Json = Record<string, any>;

function readJson(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v;
  } catch (e) {
    throw new Error(`${file}: malformed JSON: ${(e as Error).message}`);
  }
}

const readOptional = (file: string): Json => (existsSync(file) ? readJson(file) : {});

/** Special tokens are written either as a string or as an AddedToken object {content, ...}. */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content;
  return null;
}

/** Ids of the special tokens the tokenizer.json post-processor puts first / last in a single sequence. */
function templateEnds(pp: Json | null): { first: string | null; last: string | null } {
  if (!pp) return { first: null, last: null };
  if (pp.type === 'Sequence') {
    for (const p of pp.processors ?? []) if (p?.type === 'TemplateProcessing') return templateEnds(p);
    return { first: null, last: null };
  }
  if (pp.type !== 'TemplateProcessing' || !Array.isArray(pp.single)) return { first: null, last: null };
  const at = (i: number): string | null => pp.single[i]?.SpecialToken?.id ?? null;
  return { first: at(0), last: at(pp.single.length - 1) };
}

export function loadTokenizer(dir: string): LonasTokenizer {
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(dir))
    throw new Error(
      `${dir}: no such model directory; pass the directory of a Hugging Face model (config.json, *.safetensors, tokenizer.json)`,
    );
  if (!existsSync(tokFile)) {
    throw new Error(`${dir}: no tokenizer.json found; lonas needs a Hugging Face fast-tokenizer file (tokenizer.json) beside the model`);
  }
  const tokJson = readJson(tokFile);
  const config = readOptional(join(dir, 'tokenizer_config.json'));
  const specialMap = readOptional(join(dir, 'special_tokens_map.json'));
  const genConfig = readOptional(join(dir, 'generation_config.json'));
  let chatTemplate: unknown = config.chat_template;
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (chatTemplate == null && existsSync(jinjaFile)) chatTemplate = readFileSync(jinjaFile, 'utf8');

  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokJson, config);
  } catch (e) {
    throw new Error(`${tokFile}: cannot build the tokenizer: ${(e as Error).message}`);
  }

  const special = (name: string): string | null => tokenString(config[name]) ?? tokenString(specialMap[name]);
  const idOf = (s: string | null): number | null => (s === null ? null : (tok.token_to_id(s) ?? null));
  // with no tokenizer_config/special_tokens_map, the post-processor's own special tokens stand in
  const ends = templateEnds(tokJson.post_processor ?? null);
  const bosToken = special('bos_token') ?? ends.first;
  const eosToken = special('eos_token') ?? ends.last;
  const genIds = (v: unknown): number[] => (Array.isArray(v) ? v : typeof v === 'number' ? [v] : []);

  const bosId = idOf(bosToken) ?? genIds(genConfig.bos_token_id)[0] ?? null;
  const eosIds = [...genIds(genConfig.eos_token_id)];
  const tokEos = idOf(eosToken);
  if (tokEos !== null && !eosIds.includes(tokEos)) eosIds.push(tokEos);
  const padId = idOf(special('pad_token')) ?? genIds(genConfig.pad_token_id)[0] ?? null;

  const addBosDefault: boolean = config.add_bos_token ?? (bosToken !== null && ends.first === bosToken);
  const addEosDefault: boolean = config.add_eos_token ?? (eosToken !== null && ends.last === eosToken);
  const cleanUp: boolean = config.clean_up_tokenization_spaces ?? false;

  let vocabSize = 0;
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

  return {
    vocabSize,
    bosId,
    eosIds,
    padId,
    encode(text, opts = {}) {
      const ids = text.length > 0 ? tok.encode(text, { add_special_tokens: false }).ids : [];
      if ((opts.addBos ?? addBosDefault) && bosId !== null) ids.unshift(bosId);
      const eosId = tokEos ?? eosIds[0] ?? null;
      if ((opts.addEos ?? addEosDefault) && eosId !== null) ids.push(eosId);
      return ids;
    },
    decode(ids, opts = {}) {
      if (ids.length === 0) return ''; // the library throws on an empty list
      return tok.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: cleanUp });
    },
    applyChatTemplate(messages, opts = {}) {
      let source = chatTemplate;
      if (Array.isArray(source)) {
        // [{name, template}, ...]: transformers uses "default"
        source = source.find((t: Json) => t?.name === 'default')?.template;
      }
      if (typeof source !== 'string') {
        throw new Error(
          `${dir}: this model has no chat template (no chat_template in tokenizer_config.json); pass a plain prompt instead of chat messages`,
        );
      }
      return new Template(source).render({
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        bos_token: bosToken ?? '',
        eos_token: eosToken ?? '',
        unk_token: special('unk_token') ?? '',
        pad_token: special('pad_token') ?? '', // raise_exception is a jinja built-in
      });
    },
    tokenToId: (token) => tok.token_to_id(token) ?? null,
  };
}

/**
 * Streaming detokenizer: push ids one at a time and get back only the new text. Text is emitted
 * only once it is complete, so a multi-byte UTF-8 character split over byte-fallback tokens never
 * shows up as U+FFFD. Each step decodes a short window of ids (not the whole sequence), diffing the
 * window's text with and without the newest ids: that keeps leading-space handling (the decoder
 * strips the first token's space) consistent, and the cost per token constant.
 */
export class IncrementalDecoder {
  readonly ids: number[];
  /** everything emitted so far */
  printed = '';
  private prefixOffset: number;
  private readOffset: number;

  /**
   * @param context ids already shown to the user (e.g. the prompt). They are not emitted, but
   * give the first generated token its correct leading space.
   */
  constructor(
    private readonly tok: LonasTokenizer,
    private readonly opts: { skipSpecialTokens?: boolean; context?: number[] } = {},
  ) {
    this.ids = [...(opts.context ?? [])];
    this.readOffset = this.ids.length;
    this.prefixOffset = Math.max(0, this.ids.length - 4);
  }

  /** Adds one id; returns the text that became complete (often '', e.g. mid-character). */
  push(id: number): string {
    this.ids.push(id);
    return this.emit(false);
  }

  /** At the end of a stream: returns whatever is still held back (an incomplete character decodes as U+FFFD). */
  flush(): string {
    return this.readOffset < this.ids.length ? this.emit(true) : '';
  }

  private emit(force: boolean): string {
    const dec = (to?: number) => this.tok.decode(this.ids.slice(this.prefixOffset, to), { skipSpecialTokens: this.opts.skipSpecialTokens });
    const prefixText = dec(this.readOffset);
    const newText = dec();
    if (!force && (newText.length <= prefixText.length || newText.endsWith('\uFFFD'))) return '';
    const piece = newText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.printed += piece;
    return piece;
  }
}
