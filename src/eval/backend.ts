/**
 * What the harness needs from a model, as an interface (so tests can script a model), and its
 * implementation on a LlamaModel + tokenizer: batched greedy / per-prompt beam generation, and batched
 * scoring of continuations that shares each prompt's forward pass between its options.
 */
import { generate } from '../models/llama/generate.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import type { LonasTokenizer } from '../io/tokenizer.ts';
import { scoreContinuations } from './loglik.ts';

export interface GenerationRequest {
  maxNewTokens: number;
  /** 1: greedy; > 1: beam search with this many beams */
  beams: number;
}

export interface Generation {
  /** the decoded continuation (special tokens skipped) */
  text: string;
  /** prompt tokens (BOS included), when known */
  promptTokens?: number;
  /** set when the example could not run as asked (context too short): what happened instead */
  note?: string;
  /** true when the prompt alone does not fit the context: nothing was generated */
  skipped?: boolean;
  /** true when the context cut the new-token budget */
  clamped?: boolean;
}

export interface ScoreRequest {
  prompt: string;
  continuations: string[];
}

export interface ContinuationScore {
  /** sum of the log-probabilities (nats) of the continuation's tokens after the prompt */
  logprob: number;
  tokens: number;
}

export interface Scored {
  scores: ContinuationScore[];
  /** true when prompt + continuation does not fit the context: nothing was scored */
  skipped?: boolean;
  note?: string;
}

/** A model as the harness sees it. Calls get one batch of examples (the harness sizes the batches). */
export interface EvalBackend {
  generate(prompts: string[], req: GenerationRequest): Generation[];
  score(requests: ScoreRequest[]): Scored[];
}

/** The real backend. Prompts are encoded with BOS, as in training. */
export function modelBackend(model: LlamaModel, tok: LonasTokenizer): EvalBackend {
  const maxPos = model.config.maxPositions;
  return {
    generate(prompts, req) {
      const ids = prompts.map((p) => tok.encode(p, { addBos: true, addEos: false }));
      const out: Generation[] = new Array(prompts.length);
      const full: number[] = []; // rows that fit with the whole budget: one batch
      ids.forEach((p, i) => {
        const room = maxPos - p.length;
        if (room < 1) {
          out[i] = {
            text: '',
            promptTokens: p.length,
            skipped: true,
            note: `prompt of ${p.length} tokens leaves no room in the model's ${maxPos} positions; not generated (counted wrong)`,
          };
        } else if (room < req.maxNewTokens) {
          // alone, so that its budget depends on itself only (not on the batch it falls in)
          const text = decode(tok, run(model, [p], room, req, tok.eosIds)[0]);
          out[i] = {
            text,
            promptTokens: p.length,
            clamped: true,
            note: `max new tokens cut to ${room} by the model's ${maxPos} positions`,
          };
        } else full.push(i);
      });
      if (full.length > 0) {
        const conts = run(
          model,
          full.map((i) => ids[i]),
          req.maxNewTokens,
          req,
          tok.eosIds,
        );
        full.forEach((i, k) => {
          out[i] = { text: decode(tok, conts[k]), promptTokens: ids[i].length };
        });
      }
      return out;
    },
    score(requests) {
      return scoreContinuations(
        model,
        requests.map((r) => ({
          prompt: tok.encode(r.prompt, { addBos: true, addEos: false }),
          full: r.continuations.map((c) => tok.encode(r.prompt + c, { addBos: true, addEos: false })),
        })),
      );
    },
  };
}

function run(model: LlamaModel, prompts: number[][], maxNewTokens: number, req: GenerationRequest, eosIds: number[]): number[][] {
  if (req.beams > 1) return generate(model, prompts, { maxNewTokens, strategy: { kind: 'beam', beams: req.beams }, eosIds });
  return generate(model, prompts, { maxNewTokens, strategy: { kind: 'greedy' }, eosIds });
}

const decode = (tok: LonasTokenizer, ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });
