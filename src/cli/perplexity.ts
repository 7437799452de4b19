/** `lonas perplexity`: mean negative log-likelihood per token of a text file, and its exponential. */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadWithAdapter } from '../nas/load.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { perplexity } from '../models/llama/perplexity.ts';
import { perplexitySpec } from '../options/tools.ts';
import type { PerplexityOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';

export function perplexityCommand(): Command {
  return commandFrom(perplexitySpec, (o: PerplexityOptions) => {
    let text: string;
    try {
      text = readFileSync(o.text, 'utf8');
    } catch (e) {
      throw new Error(`--text ${o.text}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const tok = loadTokenizer(o.model);
    const model = loadWithAdapter(o.model, o.adapter, o.subnet).model;
    const ids = tok.encode(text, { addBos: true, addEos: false });
    const r = perplexity(model, ids);
    if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else process.stdout.write(`tokens ${r.tokens}\nnll    ${r.nll.toFixed(6)}\nppl    ${r.ppl.toFixed(4)}\n`);
  });
}
