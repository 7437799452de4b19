/**
 * The demo's built-in task suite, generated deterministically from a seed (no downloads).
 *
 * Two downstream tasks in LLM-Adapters format ({instruction, input: "", output, answer}):
 * - `arith`: templated one-step word problems (addition / subtraction of small numbers); the output shows the
 *   work and ends with the number ("We compute 7 + 5 = 12. The answer is 12"); answer = the number (scored as `number`).
 * - `choice`: two-way multiple choice in the winogrande layout ("Option1: … Option2: …", "Answer format:
 *   option1/option2"), answered "the correct answer is optionN" (scored as `choice` with labels option1/option2).
 *   Three kinds: which word is a kind of <category>, the opposite of a word, the larger / smaller number.
 *
 * A pretraining corpus states the same facts in free text (sums and differences, short stories with the
 * equation, "pear is a kind of fruit.", "the opposite of hot is cold.", "17 is larger than 9.") but never
 * uses the instruction template or the answer phrasing, so the base model knows the facts and fine-tuning
 * has to teach the task format.
 *
 * Splits are disjoint by construction, at the level of the underlying facts: every arithmetic fact
 * (op, a, b), category word, opposite pair and number pair belongs to exactly one of train / validation /
 * test, and an item of a split uses only facts of that split. The test set therefore asks about facts the
 * fine-tuning data never showed: answering needs what the base model learned in pretraining (which covers
 * every fact). Within a split, items are distinct (no two share their instruction).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../tensor/rng.ts';
import type { Example } from '../io/prompt.ts';
import { writeFileAtomic } from '../io/files.ts';

export const DEMO_TASKS = [
  /** maxNewTokens: the output is ~25 tokens + EOS; a budget well above that, far below the math default of 256 */
  { name: 'arith', answerType: 'number', maxNewTokens: 48 },
  { name: 'choice', answerType: 'choice', labels: ['option1', 'option2'], maxNewTokens: 24 },
] as const;
export type DemoTaskName = (typeof DEMO_TASKS)[number]['name'];

export type SplitName = 'train' | 'val' | 'test';

export interface SuiteSizes {
  /** pretraining documents (a few fact sentences each, ~60–80 tokens) */
  pretrainDocs: number;
  /** examples per task in each split */
  train: number;
  val: number;
  test: number;
}

export const DEFAULT_SIZES: SuiteSizes = { pretrainDocs: 12000, train: 800, val: 100, test: 200 };

export interface DemoSuite {
  seed: number;
  sizes: SuiteSizes;
  /** pretraining documents, a few sentences each (single newlines inside, never a blank line) */
  pretrain: string[];
  /** per task, per split */
  tasks: Record<DemoTaskName, Record<SplitName, Example[]>>;
  /** the fine-tuning mix: both tasks' train examples, shuffled */
  train: Example[];
  /** both tasks' validation examples, shuffled */
  val: Example[];
}

// ---------------------------------------------------------------------------------------------- word lists

const NAMES: readonly [string, 'he' | 'she'][] = [
  ['Tom', 'he'], ['Ann', 'she'], ['Sam', 'he'], ['Mia', 'she'], ['Ben', 'he'], ['Lily', 'she'],
  ['Max', 'he'], ['Zoe', 'she'], ['Leo', 'he'], ['Ella', 'she'], ['Jack', 'he'], ['Nina', 'she'],
];
const OBJECTS = ['apples', 'books', 'pencils', 'stickers', 'cookies', 'marbles', 'balls', 'cards', 'flowers', 'shells', 'coins', 'toys'];

/** Category → members. Words are unique across categories (no "orange" the fruit and the color). */
export const CATEGORIES: Readonly<Record<string, readonly string[]>> = {
  animal: ['dog', 'cat', 'horse', 'cow', 'pig', 'sheep', 'duck', 'fox', 'lion', 'tiger', 'bear', 'mouse', 'rabbit', 'frog', 'goat', 'wolf'],
  fruit: ['apple', 'banana', 'pear', 'grape', 'lemon', 'peach', 'plum', 'cherry', 'mango', 'melon', 'lime', 'kiwi'],
  color: ['red', 'blue', 'green', 'yellow', 'pink', 'purple', 'brown', 'black', 'white', 'gray'],
  vehicle: ['car', 'bus', 'train', 'truck', 'bike', 'boat', 'ship', 'plane', 'van', 'taxi'],
  furniture: ['chair', 'table', 'bed', 'sofa', 'desk', 'shelf', 'stool', 'bench', 'couch', 'cabinet'],
  clothing: ['shirt', 'hat', 'coat', 'sock', 'shoe', 'dress', 'scarf', 'glove', 'skirt', 'jacket'],
  tool: ['hammer', 'saw', 'drill', 'wrench', 'shovel', 'rake', 'axe', 'pliers', 'chisel', 'ladder'],
};

/** Antonym pairs; every word occurs once. */
export const OPPOSITES: readonly [string, string][] = [
  ['hot', 'cold'], ['big', 'small'], ['tall', 'short'], ['fast', 'slow'], ['happy', 'sad'], ['up', 'down'],
  ['open', 'closed'], ['light', 'dark'], ['old', 'young'], ['wet', 'dry'], ['full', 'empty'], ['hard', 'soft'],
  ['early', 'late'], ['loud', 'quiet'], ['rich', 'poor'], ['strong', 'weak'], ['thick', 'thin'], ['day', 'night'],
  ['left', 'right'], ['near', 'far'], ['clean', 'dirty'], ['good', 'bad'], ['high', 'low'], ['first', 'last'],
  ['win', 'lose'], ['push', 'pull'],
];

/** Largest number in the comparison items. */
const MAX_COMPARE = 30;
/** Addends of the arithmetic facts: a + b and (a + b) − b with a, b in 1..MAX_ADDEND. */
const MAX_ADDEND = 9;

/** Fraction of each fact pool held out for test and validation. */
const TEST_FRACTION = 0.3;
const VAL_FRACTION = 0.1;

// ---------------------------------------------------------------------------------------------- facts

interface ArithFact { op: '+' | '-'; a: number; b: number; result: number }
type ChoiceFact =
  | { kind: 'category'; category: string; word: string }
  | { kind: 'opposite'; pair: [string, string] }
  | { kind: 'compare'; small: number; large: number };

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

function arithFacts(): ArithFact[] {
  const out: ArithFact[] = [];
  for (let a = 1; a <= MAX_ADDEND; a++) {
    for (let b = 1; b <= MAX_ADDEND; b++) {
      out.push({ op: '+', a, b, result: a + b });
      out.push({ op: '-', a: a + b, b, result: a });
    }
  }
  return out;
}

/** Splits a pool into test / val / train parts (seeded shuffle; at least one item per part when possible). */
function splitPool<T>(items: readonly T[], rng: Rng): Record<SplitName, T[]> {
  const order = rng.shuffle(items.slice());
  const nTest = Math.max(1, Math.round(items.length * TEST_FRACTION));
  const nVal = Math.max(1, Math.round(items.length * VAL_FRACTION));
  return { test: order.slice(0, nTest), val: order.slice(nTest, nTest + nVal), train: order.slice(nTest + nVal) };
}

interface FactSplits {
  arith: Record<SplitName, ArithFact[]>;
  /** category → split → member words */
  words: Record<string, Record<SplitName, string[]>>;
  opposites: Record<SplitName, [string, string][]>;
  compare: Record<SplitName, [number, number][]>;
}

function splitFacts(rng: Rng): FactSplits {
  const words: FactSplits['words'] = {};
  for (const [cat, members] of Object.entries(CATEGORIES)) words[cat] = splitPool(members, rng.derive(`words:${cat}`));
  const pairs: [number, number][] = [];
  for (let x = 1; x <= MAX_COMPARE; x++) for (let y = x + 1; y <= MAX_COMPARE; y++) pairs.push([x, y]);
  return {
    arith: splitPool(arithFacts(), rng.derive('arith')),
    words,
    opposites: splitPool(OPPOSITES, rng.derive('opposites')),
    compare: splitPool(pairs, rng.derive('compare')),
  };
}

// ---------------------------------------------------------------------------------------------- arith items

const ADD_QUESTIONS = [
  (n: string, p: string, o: string, a: number, b: number) => `${n} has ${a} ${o} and buys ${b} more. How many ${o} does ${p} have now?`,
  (n: string, p: string, o: string, a: number, b: number) => `${n} had ${a} ${o}. ${cap(p)} found ${b} more ${o}. How many ${o} does ${n} have?`,
  (n: string, _p: string, o: string, a: number, b: number) => `There are ${a} ${o} in a box. ${n} puts ${b} more ${o} in the box. How many ${o} are in the box?`,
  (n: string, _p: string, o: string, a: number, b: number) => `${n} gets ${a} ${o} on Monday and ${b} ${o} on Tuesday. How many ${o} does ${n} get in all?`,
];
const SUB_QUESTIONS = [
  (n: string, p: string, o: string, t: number, b: number) => `${n} has ${t} ${o} and gives away ${b}. How many ${o} does ${p} have left?`,
  (n: string, p: string, o: string, t: number, b: number) => `${n} had ${t} ${o}. ${cap(p)} lost ${b} of them. How many ${o} does ${n} have now?`,
  (n: string, _p: string, o: string, t: number, b: number) => `There are ${t} ${o} in a box. ${n} takes ${b} ${o} out of the box. How many ${o} are left in the box?`,
  (n: string, _p: string, o: string, t: number, b: number) => `${n} had ${t} ${o} and used ${b} of them. How many ${o} does ${n} have now?`,
];

function arithItem(rng: Rng, f: ArithFact): Example {
  const [name, pron] = pick(rng, NAMES);
  const obj = pick(rng, OBJECTS);
  const q = pick(rng, f.op === '+' ? ADD_QUESTIONS : SUB_QUESTIONS);
  return {
    instruction: q(name, pron, obj, f.a, f.b),
    input: '',
    // starts with a word: a number right after "### Response:\n" would tokenize unlike the same number after a space
    output: `We compute ${f.a} ${f.op} ${f.b} = ${f.result}. The answer is ${f.result}`,
    answer: String(f.result),
  };
}

// ---------------------------------------------------------------------------------------------- choice items

function choiceInstruction(question: string, o1: string, o2: string): string {
  return `${question}\n\nOption1: ${o1} Option2: ${o2}\n\nAnswer format: option1/option2`;
}

/** One choice item from the facts of one split; the correct option's position is drawn uniformly. */
function choiceItem(rng: Rng, s: { words: Record<string, string[]>; opposites: [string, string][]; compare: [number, number][] }): Example {
  const r = rng.uniform();
  let question: string, right: string, wrong: string;
  if (r < 0.4) {
    const cats = Object.keys(s.words).filter((c) => s.words[c].length > 0);
    const cat = pick(rng, cats);
    const other = pick(rng, cats.filter((c) => c !== cat));
    question = `Which one is a kind of ${cat}?`;
    right = pick(rng, s.words[cat]);
    wrong = pick(rng, s.words[other]);
  } else if (r < 0.7 && s.opposites.length >= 2) {
    const i = rng.int(s.opposites.length);
    const pair = s.opposites[i];
    const flip = rng.int(2);
    const word = pair[flip], opposite = pair[1 - flip];
    const others = s.opposites.filter((_, j) => j !== i);
    question = `What is the opposite of ${word}?`;
    right = opposite;
    wrong = pick(rng, others)[rng.int(2)];
  } else {
    const [small, large] = pick(rng, s.compare);
    const larger = rng.int(2) === 0;
    question = `Which number is ${larger ? 'larger' : 'smaller'}?`;
    right = String(larger ? large : small);
    wrong = String(larger ? small : large);
  }
  const first = rng.int(2) === 0;
  return {
    instruction: choiceInstruction(question, first ? right : wrong, first ? wrong : right),
    input: '',
    output: `the correct answer is ${first ? 'option1' : 'option2'}`,
    answer: first ? 'option1' : 'option2',
  };
}

/** `count` items with distinct instructions (gives up after 5,000 duplicates in a row: the pool is too small). */
function distinctItems(count: number, make: () => Example, what: string): Example[] {
  const seen = new Set<string>();
  const out: Example[] = [];
  let misses = 0;
  while (out.length < count) {
    const e = make();
    if (seen.has(e.instruction)) {
      if (++misses > 5000) throw new Error(`demo suite: cannot draw ${count} distinct ${what} items (only ${out.length} found)`);
      continue;
    }
    misses = 0;
    seen.add(e.instruction);
    out.push(e);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- pretraining

/**
 * Free-text statements of facts (all splits): the pretraining corpus teaches the knowledge and the skills
 * the tasks need, in free form, never in the instruction format:
 * - facts: sums and differences, category members, opposites, comparisons;
 * - reading the context: stories whose numbers are restated in an equation, "Of X and Y, the one that is a
 *   kind of fruit is X", "Which number is larger, X or Y? X is.", and labelled boxes ("The fruit is in box2");
 * - the vocabulary of the instruction template, in unrelated sentences, so that no token of a task is new
 *   to the base model (fine-tuning trains adapters, not embeddings).
 */
function factSentence(rng: Rng, all: { arith: ArithFact[]; compare: [number, number][] }): string {
  const r = rng.uniform();
  const two = <T>(a: T, b: T): [T, T] => (rng.int(2) === 0 ? [a, b] : [b, a]);
  const [name, pron] = pick(rng, NAMES);
  const obj = pick(rng, OBJECTS);
  if (r < 0.45) return arithSentence(rng, pick(rng, all.arith), name, pron, obj);
  const cats = Object.keys(CATEGORIES);
  const cat = pick(rng, cats);
  const word = pick(rng, CATEGORIES[cat]);
  const otherCat = pick(rng, cats.filter((c) => c !== cat));
  const other = pick(rng, CATEGORIES[otherCat]);
  if (r < 0.63) {
    const [x, y] = two(word, other);
    switch (rng.int(7)) {
      case 0: case 1: return `${cap(word)} is a kind of ${cat}.`;
      case 2: return `${cap(word)} is a kind of ${cat}, but ${other} is not.`;
      case 3: case 4: return `Of ${x} and ${y}, the one that is a kind of ${cat} is ${word}.`;
      case 5: return `Which one is a kind of ${cat}, ${x} or ${y}? ${cap(word)} is.`;
      default: {
        const inFirst = x === word;
        return `${cap(name)} put the ${x} in box1 and the ${y} in box2. The ${cat} is in box${inFirst ? 1 : 2}.`;
      }
    }
  }
  if (r < 0.73) {
    const i = rng.int(OPPOSITES.length);
    const flip = rng.int(2);
    const w = OPPOSITES[i][flip], o = OPPOSITES[i][1 - flip];
    const distractor = OPPOSITES[(i + 1 + rng.int(OPPOSITES.length - 1)) % OPPOSITES.length][rng.int(2)];
    const [x, y] = two(o, distractor);
    switch (rng.int(5)) {
      case 0: return `The opposite of ${w} is ${o}.`;
      case 1: return `${cap(w)} and ${o} are opposites.`;
      case 2: return `Of ${x} and ${y}, the opposite of ${w} is ${o}.`;
      case 3: return `What is the opposite of ${w}? It is ${o}.`;
      default: return `${name} put ${x} in box1 and ${y} in box2. The opposite of ${w} is in box${x === o ? 1 : 2}.`;
    }
  }
  if (r < 0.85) {
    const [small, large] = pick(rng, all.compare);
    const [x, y] = two(small, large);
    const larger = rng.int(2) === 0;
    switch (rng.int(6)) {
      case 0: return larger ? `${large} is larger than ${small}.` : `${small} is smaller than ${large}.`;
      case 1: case 2: return `Of ${x} and ${y}, the ${larger ? 'larger' : 'smaller'} number is ${larger ? large : small}.`;
      case 3: return `Which number is ${larger ? 'larger' : 'smaller'}, ${x} or ${y}? ${larger ? large : small} is.`;
      case 4: return `${name} put ${x} ${obj} in box1 and ${y} ${obj} in box2. The ${larger ? 'larger' : 'smaller'} number is in box${(x === (larger ? large : small)) ? 1 : 2}.`;
      default: return `${large} is more than ${small}, and ${small} is less than ${large}.`;
    }
  }
  // the template's vocabulary in unrelated sentences, and plain copying questions
  const a = 1 + rng.int(20);
  switch (rng.int(12)) {
    case 0: return `${name} has ${a} ${obj}. How many ${obj} does ${pron} have? ${cap(pron)} has ${a} ${obj}.`;
    case 1: return `There are ${a} ${obj} in a box. How many ${obj} are in the box? There are ${a}.`;
    case 2: return `Below is a box with ${a} ${obj}.`;
    case 3: return `${name} read an instruction that describes a task.`;
    case 4: return `Write a response that appropriately completes the request, ${name}.`;
    case 5: return `The request is a task, and the response completes it.`;
    case 6: return `Instruction: read. Response: write. Input: a word.`;
    case 7: return `Each option is a word. Option one is ${word} and the other option is ${other}.`;
    case 8: return `Answer in the right format. The correct format is ${word}/${other}.`;
    case 9: return `${name} gets ${a} ${obj} on Monday, and ${pron} will get more on Tuesday.`;
    case 10: return `We compute, and then we write the answer. # and ### are signs.`;
    default: return `The answer ${name} gave is correct, and ${pron} is right.`;
  }
}

const ADD_STORIES = [
  (n: string, p: string, o: string, a: number, b: number) => `${n} has ${a} ${o} and buys ${b} more.`,
  (n: string, p: string, o: string, a: number, b: number) => `${n} had ${a} ${o}. ${cap(p)} found ${b} more ${o}.`,
  (n: string, _p: string, o: string, a: number, b: number) => `There are ${a} ${o} in a box. ${n} puts ${b} more ${o} in the box.`,
  (n: string, _p: string, o: string, a: number, b: number) => `${n} gets ${a} ${o} on Monday and ${b} ${o} on Tuesday.`,
];
const SUB_STORIES = [
  (n: string, _p: string, o: string, t: number, b: number) => `${n} has ${t} ${o} and gives away ${b}.`,
  (n: string, p: string, o: string, t: number, b: number) => `${n} had ${t} ${o}. ${cap(p)} lost ${b} of them.`,
  (n: string, _p: string, o: string, t: number, b: number) => `There are ${t} ${o} in a box. ${n} takes ${b} ${o} out of the box.`,
  (n: string, _p: string, o: string, t: number, b: number) => `${n} had ${t} ${o} and used ${b} of them.`,
];

function arithSentence(rng: Rng, f: ArithFact, name: string, pron: string, obj: string): string {
  const add = f.op === '+';
  const eq = `${f.a} ${f.op} ${f.b} = ${f.result}`;
  const k = rng.int(12);
  if (k < 5) {
    const story = pick(rng, add ? ADD_STORIES : SUB_STORIES)(name, pron, obj, f.a, f.b);
    const then = add ? pick(rng, [`so ${pron} has ${f.result} ${obj} now`, `so there are ${f.result} ${obj} in all`])
      : pick(rng, [`so ${pron} has ${f.result} ${obj} left`, `so ${f.result} ${obj} are left`]);
    return `${story} We compute ${eq}, ${then}.`;
  }
  if (k < 8) return `${eq}.`;
  if (k < 9) return add ? `${f.a} plus ${f.b} is ${f.result}.` : `${f.a} minus ${f.b} is ${f.result}.`;
  if (k < 10) return `The answer to ${f.a} ${f.op} ${f.b} is ${f.result}.`;
  if (k < 11) return `We compute ${eq}.`;
  return add ? `${f.result} is ${f.b} more than ${f.a}.` : `${f.result} is ${f.b} less than ${f.a}.`;
}

/** A few sentences, joined by spaces or (one time in five) a newline; never a blank line. */
function pretrainDoc(rng: Rng, all: { arith: ArithFact[]; compare: [number, number][] }): string {
  const n = 3 + rng.int(4);
  let doc = factSentence(rng, all);
  for (let i = 1; i < n; i++) doc += (rng.int(5) === 0 ? '\n' : ' ') + factSentence(rng, all);
  return doc;
}

// ---------------------------------------------------------------------------------------------- suite

/** The whole suite for a seed; the same seed and sizes always give the same suite. */
export function generateSuite(seed: number, sizes: Partial<SuiteSizes> = {}): DemoSuite {
  const sz: SuiteSizes = { ...DEFAULT_SIZES, ...sizes };
  for (const [k, v] of Object.entries(sz)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`demo suite: size ${k} must be a non-negative integer, got ${v}`);
  }
  const root = new Rng(seed);
  const facts = splitFacts(root.derive('split'));
  const tasks = {} as DemoSuite['tasks'];
  const splits: SplitName[] = ['train', 'val', 'test'];
  tasks.arith = {} as Record<SplitName, Example[]>;
  tasks.choice = {} as Record<SplitName, Example[]>;
  for (const split of splits) {
    const n = sz[split];
    const ar = root.derive(`arith:${split}`);
    tasks.arith[split] = distinctItems(n, () => arithItem(ar, pick(ar, facts.arith[split])), `arith ${split}`);
    const cr = root.derive(`choice:${split}`);
    const words = Object.fromEntries(Object.entries(facts.words).map(([c, s]) => [c, s[split]]));
    tasks.choice[split] = distinctItems(n, () => choiceItem(cr, { words, opposites: facts.opposites[split], compare: facts.compare[split] }), `choice ${split}`);
  }
  const all = { arith: arithFacts(), compare: [...facts.compare.train, ...facts.compare.val, ...facts.compare.test] };
  const pr = root.derive('pretrain');
  const pretrain = Array.from({ length: sz.pretrainDocs }, () => pretrainDoc(pr, all));
  const train = root.derive('mix:train').shuffle([...tasks.arith.train, ...tasks.choice.train]);
  const val = root.derive('mix:val').shuffle([...tasks.arith.val, ...tasks.choice.val]);
  return { seed, sizes: sz, pretrain, tasks, train, val };
}

export interface SuiteFiles {
  dir: string;
  /** pretraining documents separated by blank lines (read it back with readPretrainCorpus) */
  pretrain: string;
  /** fine-tuning mix of both tasks */
  train: string;
  /** validation mix of both tasks */
  val: string;
  /** `lonas eval --data-dir` root: <tasks>/<task>/{train,val,test}.json */
  tasksDir: string;
  /** per task: its test and validation files (for `--data FILE` / `lonas search --val FILE`) */
  test: Record<DemoTaskName, string>;
  valByTask: Record<DemoTaskName, string>;
  /** sha256 of all written contents (identifies the suite) */
  hash: string;
}

/**
 * Writes the suite: <dir>/pretrain.txt, <dir>/train.json, <dir>/val.json, <dir>/tasks/<task>/{train,val,test}.json
 * and <dir>/suite.json (seed, sizes, counts, hash). Files are written atomically.
 */
export function writeSuite(dir: string, suite: DemoSuite): SuiteFiles {
  const h = createHash('sha256');
  const put = (file: string, text: string) => {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileAtomic(file, text);
    h.update(file.slice(dir.length)).update('\0').update(text).update('\0');
    return file;
  };
  const json = (xs: Example[]) => `${JSON.stringify(xs, null, 2)}\n`;
  const tasksDir = join(dir, 'tasks');
  const files = {
    dir,
    pretrain: put(join(dir, 'pretrain.txt'), `${suite.pretrain.join('\n\n')}\n`),
    train: put(join(dir, 'train.json'), json(suite.train)),
    val: put(join(dir, 'val.json'), json(suite.val)),
    tasksDir,
    test: {} as Record<DemoTaskName, string>,
    valByTask: {} as Record<DemoTaskName, string>,
    hash: '',
  };
  for (const t of DEMO_TASKS) {
    const split = suite.tasks[t.name];
    put(join(tasksDir, t.name, 'train.json'), json(split.train));
    files.valByTask[t.name] = put(join(tasksDir, t.name, 'val.json'), json(split.val));
    files.test[t.name] = put(join(tasksDir, t.name, 'test.json'), json(split.test));
  }
  files.hash = h.digest('hex');
  const counts = Object.fromEntries(DEMO_TASKS.map((t) => [t.name, Object.fromEntries(Object.entries(suite.tasks[t.name]).map(([s, xs]) => [s, xs.length]))]));
  writeFileAtomic(join(dir, 'suite.json'), `${JSON.stringify({ seed: suite.seed, sizes: suite.sizes, counts, pretrainDocs: suite.pretrain.length, tasks: DEMO_TASKS, hash: files.hash }, null, 2)}\n`);
  return files;
}

/** The documents of a pretrain.txt written by writeSuite. */
export function readPretrainCorpus(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n\n').map((d) => d.replace(/\n$/, '')).filter((d) => d.length > 0);
}

/** Generates and writes the suite in one call. */
export function buildSuite(dir: string, seed: number, sizes: Partial<SuiteSizes> = {}): SuiteFiles & { suite: DemoSuite } {
  const suite = generateSuite(seed, sizes);
  return { ...writeSuite(dir, suite), suite };
}
