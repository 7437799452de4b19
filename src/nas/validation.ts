/**
 * The validation data a sub-network search scores on: a --val file, or examples held out of the adapter's
 * training mix exactly as `lonas finetune` split it (its run_config.json), or held out of other training
 * files (--data). As evaluation tasks (--mode loglik/generate), the examples are grouped by answer format.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadTrainingMix, parseDataSpecs, readExamples, splitValidation } from '../io/datasets.ts';
import type { Example } from '../io/datasets.ts';
import { LABEL_SETS, loadDataFile } from '../eval/tasks.ts';
import type { TaskData } from '../eval/tasks.ts';
import { parseGoldNumber } from '../eval/extract.ts';
import type { AnswerSpec } from '../eval/extract.ts';
import { readRunConfig } from '../io/artifacts.ts';

/** The `options` that `lonas finetune` saved in the adapter's run_config.json (only what the split needs). */
export interface RunOptions {
  data: string;
  seed: number;
  valSize: number;
  cutoffLen: number;
  trainOnInputs: boolean;
}

/** Where the validation examples come from (the `lonas search` options of that name). */
export interface ValidationSource {
  adapter: string;
  val?: string;
  valSize?: number;
  data?: string;
  limit?: number;
}

export function readRunOptions(adapterDir: string): RunOptions | null {
  return readRunConfig(adapterDir)?.options ?? null;
}

/** The validation examples and how they were chosen (a warning when they were seen in training). */
export function validationExamples(o: ValidationSource, run: RunOptions | null): { examples: Example[]; source: string; warning?: string } {
  if ((o.val === undefined) === (o.valSize === undefined)) throw new Error('give exactly one of --val FILE or --val-size N');
  let examples: Example[], source: string, warning: string | undefined;
  if (o.val !== undefined) {
    examples = readExamples(o.val);
    source = `--val ${o.val}`;
  } else {
    const n = o.valSize!;
    if (run && !o.data) {
      const missing = parseDataSpecs(run.data)
        .map((s) => s.file)
        .filter((f) => !existsSync(f));
      if (missing.length)
        throw new Error(
          `the adapter's training data ${missing.join(', ')} (from run_config.json) is not found from ${process.cwd()}; run from the directory finetune ran in, or pass --data or --val`,
        );
      const mix = loadTrainingMix(parseDataSpecs(run.data), run.seed);
      if (run.valSize >= n) {
        examples = splitValidation(mix, run.valSize, run.seed).val.slice(0, n);
        source = `the first ${n} of the adapter's ${run.valSize} held-out training examples`;
      } else if (run.valSize > 0) {
        throw new Error(
          `--val-size ${n} exceeds the ${run.valSize} examples the adapter held out in training (finetune --val-size); use --val-size ≤ ${run.valSize} or --val FILE`,
        );
      } else {
        examples = splitValidation(mix, n, run.seed).val;
        source = `${n} examples of the training data`;
        warning =
          'the adapter was fine-tuned on all of its data (finetune --val-size 0), so these validation examples were seen in training; pass --val FILE for an unbiased score';
      }
    } else {
      if (!o.data)
        throw new Error(
          `${join(o.adapter, 'run_config.json')} not found: pass --data FILES to hold --val-size examples out of, or --val FILE`,
        );
      const seed = run?.seed ?? 42;
      examples = splitValidation(loadTrainingMix(parseDataSpecs(o.data), seed), n, seed).val;
      source = `${n} examples held out of --data ${o.data} (seed ${seed})`;
    }
  }
  if (o.limit !== undefined && examples.length > o.limit) {
    examples = examples.slice(0, o.limit);
    source += ` (first ${o.limit})`;
  }
  if (examples.length === 0) throw new Error('no validation examples');
  return { examples, source, warning };
}

/**
 * The validation examples as evaluation tasks: a --val file is one task (answer type inferred by src/eval);
 * examples drawn from a training mix are grouped by answer format (one task per choice-label family, numbers,
 * letters). The score is the accuracy over all examples (not the mean over groups).
 */
export function validationTasks(valFile: string | undefined, examples: Example[]): TaskData[] {
  if (valFile !== undefined) {
    const task = loadDataFile(valFile);
    return [{ ...task, examples: task.examples.slice(0, examples.length) }]; // examples = the file's first (--limit) ones
  }
  const groups = new Map<string, TaskData>();
  examples.forEach((e, i) => {
    if (e.answer === undefined)
      throw new Error(`validation example ${i} has no "answer" field; --mode loglik/generate needs gold answers (use --mode loss)`);
    const family = Object.keys(LABEL_SETS).find((f) => LABEL_SETS[f].includes(e.answer!));
    const answer: AnswerSpec | null = family
      ? { type: 'choice', labels: LABEL_SETS[family] }
      : parseGoldNumber(e.answer) !== null
        ? { type: 'number' }
        : /^[A-E]$/.test(e.answer)
          ? { type: 'letter' }
          : null;
    if (!answer)
      throw new Error(
        `validation example ${i}: cannot tell how to score the gold answer ${JSON.stringify(e.answer)} (not a choice label, a number or a letter A-E)`,
      );
    const name = `validation:${family ?? answer.type}`;
    if (!groups.has(name))
      groups.set(name, { name, file: 'validation split', answer, maxNewTokens: answer.type === 'choice' ? 32 : 256, examples: [] });
    groups.get(name)!.examples.push(e);
  });
  return [...groups.values()];
}
