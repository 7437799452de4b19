/** `lonas perplexity`: mean negative log-likelihood per token of a text file, and its exponential. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadWithAdapter } from '../nas/load.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { perplexity } from '../models/llama/perplexity.ts';

export function perplexityCommand(): Command {
  return new Command('perplexity')
    .description('mean NLL per token and perplexity of a text (BOS prepended, no EOS)')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .option('--adapter <dir>', 'LoRA adapter directory (PEFT format) to apply')
    .option('--subnet <spec>', 'sub-network of an elastic adapter: maximal, heuristic, minimal or a JSON file')
    .requiredOption('--text <file>', 'UTF-8 text file to score')
    .option('--json', 'print {"tokens":..,"nll":..,"ppl":..}')
    .action((o: { model: string; adapter?: string; subnet?: string; text: string; json?: boolean }) => {
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
