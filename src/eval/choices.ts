/**
 * The options of a multiple-choice example, read from its LLM-Adapters instruction, and the continuations
 * the log-likelihood mode scores.
 *
 * LLM-Adapters instructions list the options as "Solution1: … Solution2: …", "Answer1: … Answer2: …",
 * "Option1: … Option2: …" or "Ending1: …", and end in "Answer format: answer1/answer2/answer3".
 * The labels an example offers are read from that "Answer format:" line (ARC has 3–5 options per question);
 * without one, the labels whose "Label1:" marker appears; else the task's whole label set.
 */
import type { Example } from '../io/prompt.ts';

export interface ChoiceOption {
  label: string;
  /** the option's text from the instruction (boolq: the label itself); null when the instruction has none */
  text: string | null;
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

export function optionsFor(example: Pick<Example, 'instruction' | 'input'>, labels: readonly string[]): ChoiceOption[] {
  const source = example.input ? `${example.instruction}\n${example.input}` : example.instruction;
  const formatAt = source.lastIndexOf('Answer format:');
  const region = formatAt >= 0 ? source.slice(0, formatAt) : source;
  let offered: string[] = [];
  if (formatAt >= 0) {
    const line = source.slice(formatAt + 'Answer format:'.length).split('\n')[0];
    offered = line
      .split('/')
      .map((s) => s.trim())
      .filter((s) => labels.includes(s));
  }
  if (offered.length < 2) offered = labels.filter((l) => region.includes(`${capitalize(l)}:`));
  if (offered.length < 2) offered = [...labels];
  offered = [...new Set(offered)];

  // option texts: from "Label:" to the next option marker or the "Answer format:" line
  const markers = offered.map((l) => ({ label: l, at: region.lastIndexOf(`${capitalize(l)}:`) }));
  return offered.map((label, i) => {
    if (label === 'true' || label === 'false') return { label, text: label };
    const at = markers[i].at;
    if (at < 0) return { label, text: null };
    const start = at + capitalize(label).length + 1;
    const ends = markers.map((m) => m.at).filter((p) => p > at);
    const end = ends.length ? Math.min(...ends) : region.length;
    const text = region.slice(start, end).trim();
    return { label, text: text === '' ? null : text };
  });
}

/** What the log-likelihood mode scores after the prompt. */
export type LoglikTarget = 'label' | 'text';
export const LOGLIK_TARGETS: readonly LoglikTarget[] = ['label', 'text'];

/**
 * The response LLM-Adapters trains on ("output" of every commonsense record): "the correct answer is answer2".
 * Scoring it with each label is the fine-tuned model's own answer format; the shared prefix makes the
 * comparison one of log P(label | prompt, "the correct answer is").
 */
export const LABEL_RESPONSE = (label: string) => `the correct answer is ${label}`;

/**
 * The continuation scored for an option. 'label': LABEL_RESPONSE(label) (total log-likelihood compared);
 * 'text': the option's text itself (lm-eval style; compared per UTF-8 byte, lm-eval's acc_norm, since texts
 * differ in length).
 */
export function continuationFor(option: ChoiceOption, target: LoglikTarget, where: string): string {
  if (target === 'label') return LABEL_RESPONSE(option.label);
  if (option.text === null) {
    throw new Error(
      `${where}: the instruction has no text for option ${option.label} (expected "${capitalize(option.label)}: …"); use --loglik-target label`,
    );
  }
  return option.text;
}
