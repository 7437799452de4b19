/**
 * The benchmark tasks: a registry by name (answer format and the papers' default generation budget), and
 * loading a task's test set from a data directory (`<data-dir>/<task>/test.json`, LLM-Adapters layout) or
 * from any file (`--data FILE`, LLM-Adapters JSON or GSM8K JSONL) with an explicit or inferred answer type.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readExamples } from '../io/dataset-files.ts';
import type { Example } from '../io/prompt.ts';
import { ANSWER_TYPES, parseGoldNumber } from './extract.ts';
import type { AnswerSpec } from './extract.ts';

export interface TaskInfo {
  /** canonical name = directory name in LLM-Adapters' dataset/ */
  name: string;
  answer: AnswerSpec;
  /** the papers' max_new_tokens: 32 for commonsense, 256 for math */
  maxNewTokens: number;
  aliases?: string[];
}

const numbered = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

/** Label families of the commonsense tasks (the reference's regex alternatives, in its order). */
export const LABEL_SETS: Record<string, readonly string[]> = {
  boolean: ['true', 'false'],
  solution: numbered('solution', 2),
  answer: numbered('answer', 5),
  ending: numbered('ending', 4),
  option: numbered('option', 2),
};

const choice = (family: string): AnswerSpec => ({ type: 'choice', labels: LABEL_SETS[family] });
const COMMONSENSE = 32,
  MATH = 256;

export const TASKS: readonly TaskInfo[] = [
  { name: 'boolq', answer: choice('boolean'), maxNewTokens: COMMONSENSE },
  { name: 'piqa', answer: choice('solution'), maxNewTokens: COMMONSENSE },
  { name: 'social_i_qa', answer: choice('answer'), maxNewTokens: COMMONSENSE, aliases: ['siqa'] },
  { name: 'hellaswag', answer: choice('ending'), maxNewTokens: COMMONSENSE },
  { name: 'winogrande', answer: choice('option'), maxNewTokens: COMMONSENSE },
  { name: 'ARC-Easy', answer: choice('answer'), maxNewTokens: COMMONSENSE, aliases: ['arc-e', 'arc_easy'] },
  { name: 'ARC-Challenge', answer: choice('answer'), maxNewTokens: COMMONSENSE, aliases: ['arc-c', 'arc_challenge'] },
  { name: 'openbookqa', answer: choice('answer'), maxNewTokens: COMMONSENSE, aliases: ['obqa'] },
  { name: 'gsm8k', answer: { type: 'number' }, maxNewTokens: MATH },
  { name: 'AddSub', answer: { type: 'number' }, maxNewTokens: MATH },
  { name: 'MultiArith', answer: { type: 'number' }, maxNewTokens: MATH },
  { name: 'SingleEq', answer: { type: 'number' }, maxNewTokens: MATH },
  { name: 'SVAMP', answer: { type: 'number' }, maxNewTokens: MATH },
  { name: 'mawps', answer: { type: 'number' }, maxNewTokens: MATH },
  { name: 'AQuA', answer: { type: 'letter' }, maxNewTokens: MATH },
];

/** The eight commonsense tasks of the papers' table, in its order. */
export const COMMONSENSE_TASKS = ['boolq', 'piqa', 'social_i_qa', 'hellaswag', 'winogrande', 'ARC-Easy', 'ARC-Challenge', 'openbookqa'];

export function findTask(name: string): TaskInfo | null {
  const key = name.trim().toLowerCase();
  return TASKS.find((t) => t.name.toLowerCase() === key || t.aliases?.includes(key)) ?? null;
}

/** A task ready to run: its examples and how to score them. */
export interface TaskData {
  name: string;
  file: string;
  answer: AnswerSpec;
  maxNewTokens: number;
  examples: Example[];
}

/** Where the default data directory would be: `$LONAS_ASSETS/datasets/llm-adapters/dataset`, else `../shared/assets/...` from the cwd. */
function defaultDataDirPath(cwd: string): string {
  const root = process.env.LONAS_ASSETS ?? resolve(cwd, '..', 'shared', 'assets');
  return join(root, 'datasets', 'llm-adapters', 'dataset');
}

/** The default data directory (see defaultDataDirPath), only if it exists. */
export function defaultDataDir(cwd = process.cwd()): string | null {
  const dir = defaultDataDirPath(cwd);
  return existsSync(dir) ? dir : null;
}

/** The known tasks that have a <task>/test.json in `dir` (registry order). */
export function availableTasks(dir: string): string[] {
  return TASKS.filter((t) => taskFile(dir, t.name)).map((t) => t.name);
}

/**
 * Loads each named task from `<dataDir>/<task>/test.json` (dataDir: given, else the default when it exists).
 * With an explicit dataDir, names lonas does not know load too (answer type inferred from the golds).
 */
export function loadTasks(names: string[], dataDir?: string): TaskData[] {
  if (names.length === 0) throw new Error('no tasks given (e.g. --tasks boolq,piqa,gsm8k)');
  // a task lonas does not know is still found in an explicit data directory, its answer type inferred
  if (dataDir && names.some((n) => !findTask(n))) {
    return names.map((n) => {
      const known = findTask(n);
      const file = taskFile(dataDir, known?.name ?? n);
      if (!file) {
        throw new Error(
          known
            ? `task ${n}: ${join(dataDir, n, 'test.json')} not found (--data-dir ${dataDir})`
            : `unknown task '${n}'; known tasks: ${TASKS.map((t) => t.name).join(', ')}, or any <task>/test.json under --data-dir (${dataDir} has no ${n}/test.json); for another set, use --data FILE --answer-type ${['auto', ...ANSWER_TYPES].join('|')}`,
        );
      }
      return known ? loadTasks([known.name], dataDir)[0] : loadDataFile(file, 'auto');
    });
  }
  const infos = names.map((n) => {
    const info = findTask(n);
    if (!info) {
      throw new Error(
        `unknown task '${n}'; known tasks: ${TASKS.map((t) => t.name).join(', ')} (for another set, use --data FILE --answer-type ${['auto', ...ANSWER_TYPES].join('|')})`,
      );
    }
    return info;
  });
  const dups = infos.filter((t, i) => infos.indexOf(t) !== i);
  if (dups.length) throw new Error(`task '${dups[0].name}' is listed twice`);
  const dir = dataDir ?? defaultDataDir();
  if (!dir) {
    const from = process.env.LONAS_ASSETS
      ? '$LONAS_ASSETS/datasets/llm-adapters/dataset'
      : 'the default ../shared/assets/datasets/llm-adapters/dataset';
    throw new Error(
      'no data directory: pass --data-dir DIR (the LLM-Adapters dataset/ folder with <task>/test.json), or set LONAS_ASSETS ' +
        `to the assets directory holding datasets/llm-adapters/dataset; ${from} (${defaultDataDirPath(process.cwd())}) does not exist`,
    );
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--data-dir ${dir}: no such directory`);
  return infos.map((info) => {
    const file = taskFile(dir, info.name);
    if (!file) {
      const present = readdirSync(dir).filter((d) => existsSync(join(dir, d, 'test.json')));
      throw new Error(
        `task ${info.name}: ${join(dir, info.name, 'test.json')} not found (this data directory has: ${present.join(', ') || 'no <task>/test.json at all'})`,
      );
    }
    const examples = readExamples(file);
    checkGolds(file, examples, info.answer);
    return { name: info.name, file, answer: info.answer, maxNewTokens: info.maxNewTokens, examples };
  });
}

/** `<dir>/<name>/test.json`, matching the directory name case-insensitively. */
function taskFile(dir: string, name: string): string | null {
  const exact = join(dir, name, 'test.json');
  if (existsSync(exact)) return exact;
  const sub = readdirSync(dir).find((d) => d.toLowerCase() === name.toLowerCase());
  return sub && existsSync(join(dir, sub, 'test.json')) ? join(dir, sub, 'test.json') : null;
}

export type AnswerTypeOption = 'auto' | AnswerSpec['type'];

/**
 * A test set from one file. The task is named after the file (or its directory when the file is test.json).
 * answerType auto infers it from the gold answers; choice infers the label family from them.
 */
export function loadDataFile(file: string, answerType: AnswerTypeOption = 'auto'): TaskData {
  if (!['auto', ...ANSWER_TYPES].includes(answerType)) {
    throw new Error(`unknown answer type '${answerType}'; answer types: auto, ${ANSWER_TYPES.join(', ')}`);
  }
  if (!existsSync(file)) throw new Error(`--data ${file}: no such file`);
  const examples = readExamples(file);
  const golds = examples.map((e, i) => {
    if (e.answer === undefined) throw new Error(`${file}: record ${i} has no "answer" field (evaluation needs the gold answer)`);
    return e.answer;
  });
  const answer = inferAnswer(file, golds, answerType);
  checkGolds(file, examples, answer);
  const stem = basename(file).replace(/\.jsonl?$/i, '');
  const name = stem === 'test' ? basename(dirname(resolve(file))) : stem;
  const known = findTask(name);
  const maxNewTokens = known?.maxNewTokens ?? (answer.type === 'choice' ? COMMONSENSE : MATH);
  return { name, file, answer, maxNewTokens, examples };
}

function inferAnswer(file: string, golds: string[], type: AnswerTypeOption): AnswerSpec {
  const family = Object.keys(LABEL_SETS).find((f) => golds.every((g) => LABEL_SETS[f].includes(g)));
  const isNumber = golds.every((g) => parseGoldNumber(g) !== null);
  const isLetter = golds.every((g) => /^[A-E]$/.test(g));
  const sample = [...new Set(golds)]
    .slice(0, 5)
    .map((g) => JSON.stringify(g))
    .join(', ');
  const formats = 'choice (labels true/false, solution1-2, answer1-5, ending1-4 or option1-2), number (e.g. "18", "576.0") or letter (A-E)';
  if (type === 'choice' || (type === 'auto' && family)) {
    if (!family)
      throw new Error(`${file}: --answer-type choice needs gold answers from one label family; got ${sample}; choice labels: ${formats}`);
    return choice(family);
  }
  if (type === 'letter' || (type === 'auto' && isLetter)) {
    if (!isLetter) throw new Error(`${file}: --answer-type letter needs gold answers A-E; got ${sample}`);
    return { type: 'letter' };
  }
  if (type === 'number' || (type === 'auto' && isNumber)) {
    if (!isNumber) throw new Error(`${file}: --answer-type number needs numeric gold answers; got ${sample}`);
    return { type: 'number' };
  }
  throw new Error(`${file}: cannot tell the answer type from the gold answers (e.g. ${sample}); answer types: ${formats}`);
}

/** Every gold answer must be scorable with the task's answer format. */
function checkGolds(file: string, examples: Example[], answer: AnswerSpec): void {
  examples.forEach((e, i) => {
    const g = e.answer;
    const ok =
      g !== undefined &&
      (answer.type === 'choice' ? answer.labels.includes(g) : answer.type === 'letter' ? /^[A-E]$/.test(g) : parseGoldNumber(g) !== null);
    if (!ok) {
      const want = answer.type === 'choice' ? answer.labels.join('/') : answer.type === 'letter' ? 'a letter A-E' : 'a number';
      throw new Error(`${file}: record ${i}: gold answer ${g === undefined ? 'missing' : JSON.stringify(g)} is not ${want}`);
    }
  });
}
