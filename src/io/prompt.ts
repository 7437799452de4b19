/**
 * The Alpaca-style prompt template of alpaca-lora / LLM-Adapters / LoNAS (docs/spec.md §3), written
 * cleanly: the reference scripts' f-strings also carry their source indentation and trailing spaces
 * ("sorry about the formatting disaster"); we use the intended text, the same for training and evaluation.
 */

/** One instruction-tuning example (LLM-Adapters format). */
export interface Example {
  instruction: string;
  /** extra context; '' when absent (an empty input selects the template without `### Input:`) */
  input: string;
  /** the target response the model is trained on */
  output: string;
  /** the gold answer used to score generations (e.g. "true", "answer3", "18"), when the data has one */
  answer?: string;
}

const HEADER_NO_INPUT = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.';
const HEADER_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.';

/**
 * The prompt for an example. withResponse: true gives the full training text (ending in the output);
 * false gives the evaluation / generation prompt, which ends in "### Response:\n".
 * As in the reference (`if data_point["input"]:`), the `### Input:` section appears iff input is non-empty.
 */
export function promptFor(example: { instruction: string; input?: string; output?: string }, opts: { withResponse: boolean }): string {
  const response = opts.withResponse ? (example.output ?? '') : '';
  if (example.input) {
    return `${HEADER_WITH_INPUT}\n\n### Instruction:\n${example.instruction}\n\n### Input:\n${example.input}\n\n### Response:\n${response}`;
  }
  return `${HEADER_NO_INPUT}\n\n### Instruction:\n${example.instruction}\n\n### Response:\n${response}`;
}
