/**
 * Answer extraction and scoring, as the LLM-Adapters / LoNAS evaluation scripts do it
 * (LLM-Adapters `commonsense_evaluate.py` and `evaluate.py`; LoNAS `run_commonsense.py` / `run_math.py`).
 *
 * Reference behaviour, reproduced on purpose (including its quirks):
 * - The output is the decoded sequence split on "### Response:", piece [1], `.strip()`ed. Since our prompt
 *   ends in "### Response:\n", that is the generated text up to any further "### Response:" the model
 *   writes, trimmed ({@link responseText}).
 * - Choice tasks: `re.findall('true|false', s)[0]` etc.: the FIRST (leftmost) occurrence of any of the task's
 *   labels, case-sensitive, anywhere (also inside words: "untrue" yields "true"; "Answer1" yields nothing).
 *   No match → the empty prediction, which is wrong. Correct iff prediction === gold (exact string).
 * - Number tasks: commas removed, `re.findall(r'-?\d+\.?\d*')`, the LAST match as a float; no number →
 *   +∞ (wrong). Correct iff |gold − pred| ≤ 0.001 (the reference's `abs(label - predict) <= miss`, miss =
 *   0.001; docs/spec.md writes "< 1e-3": the two differ only at exactly 0.001).
 * - Letter tasks (AQuA): `re.findall('A|B|C|D|E', s)[0]`: the first capital A–E anywhere, also inside a
 *   word ("Bob has..." yields "B"). Correct iff prediction === gold.
 * Differences: JavaScript's `\d` is ASCII-only where Python 3's also matches other Unicode decimal digits
 * (irrelevant for Llama outputs on these sets); a gold number may contain thousands commas (the reference's
 * float() would crash on them; we drop them).
 */

/** The answer formats of the benchmarks. */
export type AnswerSpec = { type: 'choice'; labels: readonly string[] } | { type: 'number' } | { type: 'letter' };

export type AnswerType = AnswerSpec['type'];
export const ANSWER_TYPES: readonly AnswerType[] = ['choice', 'number', 'letter'];

/** The reference's `output.split("### Response:")[1].strip()` applied to prompt + continuation. */
export function responseText(continuation: string): string {
  return continuation.split('### Response:')[0].trim();
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** First (leftmost) occurrence of any label, case-sensitive; at one position the earlier label wins. null if none. */
export function extractChoice(output: string, labels: readonly string[]): string | null {
  if (labels.length === 0) throw new Error('extractChoice: no labels');
  const m = new RegExp(labels.map(escapeRegExp).join('|')).exec(output.trim());
  return m ? m[0] : null;
}

const NUMBER_RE = /-?\d+\.?\d*/g;

/** The last number in the output (commas removed first), or null when there is none. */
export function extractNumber(output: string): number | null {
  const found = output.replace(/,/g, '').match(NUMBER_RE);
  if (!found) return null;
  return Number(found[found.length - 1]); // "5." and "007" parse as in Python's float()
}

/** The first capital A–E anywhere in the output, or null. */
export function extractLetter(output: string): string | null {
  const m = /A|B|C|D|E/.exec(output.trim());
  return m ? m[0] : null;
}

/** The reference's tolerance: `abs(label - predict) <= 0.001`. */
export const NUMBER_TOLERANCE = 1e-3;

export function numbersMatch(pred: number | null, gold: number): boolean {
  return pred !== null && Math.abs(gold - pred) <= NUMBER_TOLERANCE;
}

/** A gold numeric answer ("576.0", "18", "-3.5", "1,080"), or null when it is not a number. */
export function parseGoldNumber(gold: string): number | null {
  const s = gold.replace(/,/g, '').trim();
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return null;
  return Number(s);
}

export interface Extraction {
  /** the answer found in the output (a label, a letter, or the number as a string); null: none found */
  extracted: string | null;
  correct: boolean;
}

/** Extracts the answer from a generated continuation (raw: before responseText) and scores it against gold. */
export function scoreGeneration(spec: AnswerSpec, continuation: string, gold: string): Extraction {
  const out = responseText(continuation);
  if (spec.type === 'choice') {
    const extracted = extractChoice(out, spec.labels);
    return { extracted, correct: extracted !== null && extracted === gold };
  }
  if (spec.type === 'letter') {
    const extracted = extractLetter(out);
    return { extracted, correct: extracted !== null && extracted === gold };
  }
  const goldNumber = parseGoldNumber(gold);
  if (goldNumber === null) throw new Error(`gold answer ${JSON.stringify(gold)} is not a number`);
  const pred = extractNumber(out);
  return { extracted: pred === null ? null : String(pred), correct: numbersMatch(pred, goldNumber) };
}
