/**
 * Calibration samples: `nsamples` windows of `seqlen` tokens taken at seeded random offsets from a corpus
 * (as the Wanda/GPTQ reference code samples C4), each starting with BOS. The corpus is a text file, or an
 * instruction dataset (LLM-Adapters JSON / GSM8K JSONL) whose prompts with responses are concatenated.
 */
import { readFileSync } from 'node:fs';
import { Rng } from '../tensor/rng.ts';
import type { LonasTokenizer } from '../io/tokenizer.ts';
import { readExamples } from '../io/datasets.ts';
import { promptFor } from '../io/prompt.ts';

export function loadCalibrationSamples(file: string, tok: LonasTokenizer, nsamples: number, seqlen: number, seed = 0): Int32Array[] {
  let text: string;
  if (/\.(json|jsonl)$/i.test(file)) {
    text = readExamples(file).map((e) => promptFor(e, { withResponse: true })).join('\n\n');
  } else {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`--calib ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  const ids = tok.encode(text, { addBos: false });
  const body = seqlen - (tok.bosId !== null ? 1 : 0);
  if (ids.length < body + 1) {
    throw new Error(`--calib ${file}: ${ids.length} tokens is too short for windows of ${seqlen}; use a larger corpus or a smaller --seqlen`);
  }
  const rng = new Rng(seed);
  return Array.from({ length: nsamples }, () => {
    const start = rng.int(ids.length - body);
    const window = ids.slice(start, start + body);
    return Int32Array.from(tok.bosId !== null ? [tok.bosId, ...window] : window);
  });
}
