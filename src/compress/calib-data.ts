/**
 * Calibration samples: `nsamples` windows of `seqlen` tokens taken at seeded random offsets from a corpus
 * (as the Wanda/GPTQ reference code samples C4), each starting with BOS. The corpus is a text file (split
 * into paragraphs at blank lines), or an instruction dataset (LLM-Adapters JSON / GSM8K JSONL) whose prompts
 * with responses are the documents. Documents are taken in a seeded order and tokenized one by one until
 * there are enough tokens (tokenizing a whole corpus as one string is slow: BPE without a pre-tokenizer is
 * super-linear in the length of a "word").
 */
import { readFileSync } from 'node:fs';
import { Rng } from '../tensor/rng.ts';
import type { LonasTokenizer } from '../io/tokenizer.ts';
import { readExamples } from '../io/datasets.ts';
import { promptFor } from '../io/prompt.ts';

function documents(file: string): string[] {
  if (/\.(json|jsonl)$/i.test(file)) return readExamples(file).map((e) => promptFor(e, { withResponse: true }));
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--calib ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  // paragraphs, and long paragraphs cut at ~4 KB line boundaries
  return text
    .split(/\n\s*\n/)
    .flatMap((p) => p.match(/[\s\S]{1,4000}(?:\n|$)|[\s\S]{1,4000}/g) ?? [])
    .filter((p) => p.trim());
}

export function loadCalibrationSamples(file: string, tok: LonasTokenizer, nsamples: number, seqlen: number, seed = 0): Int32Array[] {
  const docs = documents(file);
  const rng = new Rng(seed);
  const order = rng.shuffle(docs.map((_, i) => i));
  const body = seqlen - (tok.bosId !== null ? 1 : 0);
  const wanted = Math.max(nsamples * body * 2, body + 1);
  const ids: number[] = [];
  for (const i of order) {
    if (ids.length >= wanted) break;
    for (const t of tok.encode(`${docs[i]}\n\n`, { addBos: false })) ids.push(t);
  }
  if (ids.length < body + 1) {
    throw new Error(
      `--calib ${file}: ${ids.length} tokens is too short for windows of ${seqlen}; use a larger corpus or a smaller --seqlen`,
    );
  }
  return Array.from({ length: nsamples }, () => {
    const start = rng.int(ids.length - body);
    const window = ids.slice(start, start + body);
    return Int32Array.from(tok.bosId !== null ? [tok.bosId, ...window] : window);
  });
}
