/** `lonas generate`: continue a prompt with greedy decoding, sampling or beam search; prints the continuation only. */
import { Command } from 'commander';
import { loadWithAdapter } from '../nas/load.ts';
import { generate } from '../models/llama/generate.ts';
import type { Strategy } from '../models/llama/generate.ts';
import { loadTokenizer, IncrementalDecoder } from '../io/tokenizer.ts';
import { floatOption, intOption } from './options.ts';

interface GenerateCliOptions {
  model: string;
  adapter?: string;
  subnet?: string;
  prompt: string;
  maxNewTokens: number;
  greedy?: boolean;
  temperature?: number;
  topP: number;
  seed: number;
  beams?: number;
  chat?: boolean;
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('generate a continuation of a prompt (prints the continuation only)')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, safetensors, tokenizer.json)')
    .option('--adapter <dir>', 'LoRA adapter directory (PEFT format) to apply')
    .option('--subnet <spec>', 'sub-network of an elastic adapter: maximal, heuristic, minimal or a JSON file', undefined)
    .requiredOption('--prompt <text>', 'prompt text ("" starts from BOS alone)')
    .option('--max-new-tokens <n>', 'tokens to generate at most', intOption('--max-new-tokens'), 128)
    .option('--greedy', 'greedy decoding (the default unless --temperature is given)')
    .option('--temperature <t>', 'sample with this temperature', floatOption('--temperature', (n) => n > 0, '> 0'))
    .option('--top-p <p>', 'nucleus sampling mass', floatOption('--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]'), 1)
    .option('--seed <s>', 'random seed for sampling', intOption('--seed'), 0)
    .option('--beams <k>', 'beam search with k beams', intOption('--beams', 1))
    .option('--chat', "wrap the prompt as a user message with the model's chat template")
    .action((o: GenerateCliOptions) => {
      if (o.greedy && (o.temperature !== undefined || o.beams !== undefined)) throw new Error('--greedy cannot be combined with --temperature or --beams');
      if (o.temperature !== undefined && o.beams !== undefined) throw new Error('choose sampling (--temperature) or beam search (--beams), not both');
      const strategy: Strategy = o.beams !== undefined ? { kind: 'beam', beams: o.beams }
        : o.temperature !== undefined ? { kind: 'sample', temperature: o.temperature, topP: o.topP, seed: o.seed }
        : { kind: 'greedy' };
      const tok = loadTokenizer(o.model);
      const model = loadWithAdapter(o.model, o.adapter, o.subnet).model;
      const prompt = o.chat
        ? tok.encode(tok.applyChatTemplate([{ role: 'user', content: o.prompt }], { addGenerationPrompt: true }), { addBos: false })
        : tok.encode(o.prompt);
      if (prompt.length === 0) throw new Error('the prompt encodes to no tokens and the tokenizer adds no BOS; give a non-empty --prompt');
      const room = model.config.maxPositions - prompt.length;
      if (room < o.maxNewTokens) throw new Error(`prompt (${prompt.length} tokens) + --max-new-tokens ${o.maxNewTokens} exceeds the model's ${model.config.maxPositions} positions; lower --max-new-tokens to ${Math.max(room, 0)}`);
      const stream = new IncrementalDecoder(tok, { context: prompt, skipSpecialTokens: true }); // the prompt gives the first new word its leading space
      const write = (s: string) => process.stdout.write(s);
      const out = generate(model, [prompt], {
        maxNewTokens: o.maxNewTokens,
        strategy,
        eosIds: tok.eosIds,
        onStep: strategy.kind === 'beam' ? undefined : ([t]) => { if (t >= 0) write(stream.push(t)); },
      })[0];
      if (strategy.kind === 'beam') write(tok.decode(out));
      else write(stream.flush());
      process.stdout.write('\n'); // end the output line (the continuation itself is printed verbatim)
    });
}
