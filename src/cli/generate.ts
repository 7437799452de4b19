/** `lonas generate`: continue a prompt with greedy decoding, sampling or beam search; prints the continuation only. */
import type { Command } from 'commander';
import { loadWithAdapter } from '../nas/load.ts';
import { generate } from '../models/llama/generate.ts';
import type { Strategy } from '../models/llama/generate.ts';
import { loadTokenizer, IncrementalDecoder } from '../io/tokenizer.ts';
import { generateSpec } from '../options/tools.ts';
import type { GenerateOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';
import { setGemmCompute } from '../kernels/compute-mode.ts';

export function generateCommand(): Command {
  return commandFrom(generateSpec, (o: GenerateOptions) => {
    if (o.greedy && (o.temperature !== undefined || o.beams !== undefined))
      throw new Error('--greedy cannot be combined with --temperature or --beams');
    if (o.temperature !== undefined && o.beams !== undefined)
      throw new Error('choose sampling (--temperature) or beam search (--beams), not both');
    const strategy: Strategy =
      o.beams !== undefined
        ? { kind: 'beam', beams: o.beams }
        : o.temperature !== undefined
          ? { kind: 'sample', temperature: o.temperature, topP: o.topP, seed: o.seed }
          : { kind: 'greedy' };
    const computeNote = setGemmCompute(o.compute);
    if (computeNote) process.stderr.write(`${computeNote}\n`);
    const tok = loadTokenizer(o.model);
    const model = loadWithAdapter(o.model, o.adapter, o.subnet).model;
    const prompt = o.chat
      ? tok.encode(tok.applyChatTemplate([{ role: 'user', content: o.prompt }], { addGenerationPrompt: true }), { addBos: false })
      : tok.encode(o.prompt);
    if (prompt.length === 0) throw new Error('the prompt encodes to no tokens and the tokenizer adds no BOS; give a non-empty --prompt');
    const room = model.config.maxPositions - prompt.length;
    if (room < o.maxNewTokens)
      throw new Error(
        `prompt (${prompt.length} tokens) + --max-new-tokens ${o.maxNewTokens} exceeds the model's ${model.config.maxPositions} positions; lower --max-new-tokens to ${Math.max(room, 0)}`,
      );
    const stream = new IncrementalDecoder(tok, { context: prompt, skipSpecialTokens: true }); // the prompt gives the first new word its leading space
    const write = (s: string) => process.stdout.write(s);
    const out = generate(model, [prompt], {
      maxNewTokens: o.maxNewTokens,
      strategy,
      eosIds: tok.eosIds,
      onStep:
        strategy.kind === 'beam'
          ? undefined
          : ([t]) => {
              if (t >= 0) write(stream.push(t));
            },
    })[0];
    if (strategy.kind === 'beam') write(tok.decode(out));
    else write(stream.flush());
    process.stdout.write('\n'); // end the output line (the continuation itself is printed verbatim)
  });
}
