/**
 * The demo's built-in task suite, generated deterministically from a seed (no downloads).
 *
 * Two downstream tasks in LLM-Adapters format ({instruction, input: "", output, answer}):
 * - `arith`: one-step word problems (addition / subtraction of numbers up to 18); the output shows the work
 *   and ends with the number ("We compute 7 + 5 = 12. The answer is 12"); scored as `number`.
 * - `choice`: two-way multiple choice in the winogrande layout ("Option1: even Option2: odd", "Answer format:
 *   option1/option2"): is the result of a word problem (or of a bare sum / difference) even or odd? The output
 *   reasons first ("We compute 7 + 5 = 12, and 12 is even, so the correct answer is option1"); scored as
 *   `choice` with labels option1/option2 (the first label in the response counts).
 *
 * A pretraining corpus states the same knowledge in free text: sums and differences, short stories with
 * their equation ("Ella had 7 shells. She found 8 more shells. We compute 7 + 8 = 15, so …"), parities
 * ("12 is an even number."), and the words of the instruction template in unrelated sentences (so no task
 * token is new to the base model). It never uses the instruction template, the options or the answer
 * phrasing, so fine-tuning has to teach the task format.
 *
 * Splits are disjoint by construction, at the level of the underlying facts: every arithmetic fact
 * (op, a, b) belongs to exactly one of train / validation / test, and an item of a split uses only facts of
 * that split (in both tasks). The test set therefore asks about sums the fine-tuning data never showed:
 * answering needs what the base model learned in pretraining (which covers every fact). Within a split,
 * items are distinct (no two share their instruction).
 *
 * Why these tasks: a model of ~1 M parameters pretrained for ~2 minutes learns facts that are completions
 * ("7 + 5 =" → 12, "12 is an" → even) and copying numbers from a story into an equation; it does not learn
 * to compare two options with each other (tried: category, opposite and larger-number questions with the
 * options in either order stay at chance after fine-tuning). So each choice item has its options in a fixed
 * order and its answer follows from facts the model can write down first.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../tensor/rng.ts';
import type { Example } from '../io/prompt.ts';
import { writeFileAtomic } from '../io/files.ts';

export const DEMO_TASKS = [
  /** maxNewTokens: outputs are ~15 tokens + EOS; a budget well above that, far below the math default of 256 */
  { name: 'arith', answerType: 'number', maxNewTokens: 32 },
  { name: 'choice', answerType: 'choice', labels: ['option1', 'option2'], maxNewTokens: 32 },
] as const;
export type DemoTaskName = (typeof DEMO_TASKS)[number]['name'];

export type SplitName = 'train' | 'val' | 'test';

export interface SuiteSizes {
  /** pretraining documents (a few sentences each, ~65 tokens) */
  pretrainDocs: number;
  /** examples per task in each split */
  train: number;
  val: number;
  test: number;
}

export const DEFAULT_SIZES: SuiteSizes = { pretrainDocs: 12000, train: 800, val: 100, test: 200 };
/** The reduced suite of `lonas demo --quick` (CI); its pretraining documents match PLANS.quick.corpusDocs. */
export const QUICK_SIZES: SuiteSizes = { pretrainDocs: 3000, train: 300, val: 40, test: 60 };

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
  ['Tom', 'he'],
  ['Ann', 'she'],
  ['Sam', 'he'],
  ['Mia', 'she'],
  ['Ben', 'he'],
  ['Lily', 'she'],
  ['Max', 'he'],
  ['Zoe', 'she'],
  ['Leo', 'he'],
  ['Ella', 'she'],
  ['Jack', 'he'],
  ['Nina', 'she'],
];
const OBJECTS = ['apples', 'books', 'pencils', 'stickers', 'cookies', 'marbles', 'balls', 'cards', 'flowers', 'shells', 'coins', 'toys'];

/** Addends of the arithmetic facts: a + b and (a + b) − b with a, b in 1..MAX_ADDEND. */
export const MAX_ADDEND = 9;

/** Fraction of the facts held out for test and validation. */
const TEST_FRACTION = 0.3;
const VAL_FRACTION = 0.1;

export const CHOICE_OPTIONS = 'Option1: even Option2: odd';

// ---------------------------------------------------------------------------------------------- facts

export interface ArithFact {
  op: '+' | '-';
  a: number;
  b: number;
  result: number;
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];
const parity = (n: number) => (n % 2 === 0 ? 'even' : 'odd');

/** Every fact: a + b and (a + b) − b for a, b in 1..9 (162 facts, results 1..18). */
export function arithFacts(): ArithFact[] {
  const out: ArithFact[] = [];
  for (let a = 1; a <= MAX_ADDEND; a++) {
    for (let b = 1; b <= MAX_ADDEND; b++) {
      out.push({ op: '+', a, b, result: a + b });
      out.push({ op: '-', a: a + b, b, result: a });
    }
  }
  return out;
}

/** The facts of each split (seeded shuffle; test and validation fractions of the 162 facts). */
export function splitFacts(rng: Rng): Record<SplitName, ArithFact[]> {
  const order = rng.shuffle(arithFacts());
  const nTest = Math.round(order.length * TEST_FRACTION);
  const nVal = Math.round(order.length * VAL_FRACTION);
  return { test: order.slice(0, nTest), val: order.slice(nTest, nTest + nVal), train: order.slice(nTest + nVal) };
}

// ---------------------------------------------------------------------------------------------- stories

type Story = (name: string, pron: string, obj: string, a: number, b: number) => string;

/** The situation of a word problem; ADD_QUESTIONS[i] / SUB_QUESTIONS[i] ask about ADD_STORIES[i] / SUB_STORIES[i]. */
const ADD_STORIES: Story[] = [
  (n, _p, o, a, b) => `${n} has ${a} ${o} and buys ${b} more.`,
  (n, p, o, a, b) => `${n} had ${a} ${o}. ${cap(p)} found ${b} more ${o}.`,
  (n, _p, o, a, b) => `There are ${a} ${o} in a box. ${n} puts ${b} more ${o} in the box.`,
  (n, _p, o, a, b) => `${n} gets ${a} ${o} on Monday and ${b} ${o} on Tuesday.`,
];
const SUB_STORIES: Story[] = [
  (n, _p, o, t, b) => `${n} has ${t} ${o} and gives away ${b}.`,
  (n, p, o, t, b) => `${n} had ${t} ${o}. ${cap(p)} lost ${b} of them.`,
  (n, _p, o, t, b) => `There are ${t} ${o} in a box. ${n} takes ${b} ${o} out of the box.`,
  (n, _p, o, t, b) => `${n} had ${t} ${o} and used ${b} of them.`,
];
const ADD_QUESTIONS = [
  (_n: string, p: string, o: string) => `How many ${o} does ${p} have now?`,
  (n: string, _p: string, o: string) => `How many ${o} does ${n} have?`,
  (_n: string, _p: string, o: string) => `How many ${o} are in the box?`,
  (n: string, _p: string, o: string) => `How many ${o} does ${n} get in all?`,
];
const SUB_QUESTIONS = [
  (_n: string, p: string, o: string) => `How many ${o} does ${p} have left?`,
  (n: string, _p: string, o: string) => `How many ${o} does ${n} have now?`,
  (_n: string, _p: string, o: string) => `How many ${o} are left in the box?`,
  (n: string, _p: string, o: string) => `How many ${o} does ${n} have now?`,
];

/** The parity question about the same quantity as ADD_QUESTIONS[i] / SUB_QUESTIONS[i]. */
const ADD_PARITY = [
  (_n: string, p: string, o: string) => `Is the number of ${o} ${p} has now even or odd?`,
  (n: string, _p: string, o: string) => `Is the number of ${o} ${n} has even or odd?`,
  (_n: string, _p: string, o: string) => `Is the number of ${o} in the box even or odd?`,
  (n: string, _p: string, o: string) => `Is the number of ${o} ${n} gets in all even or odd?`,
];
const SUB_PARITY = [
  (_n: string, p: string, o: string) => `Is the number of ${o} ${p} has left even or odd?`,
  (n: string, _p: string, o: string) => `Is the number of ${o} ${n} has now even or odd?`,
  (_n: string, _p: string, o: string) => `Is the number of ${o} left in the box even or odd?`,
  (n: string, _p: string, o: string) => `Is the number of ${o} ${n} has now even or odd?`,
];

interface Problem {
  story: string;
  question: string;
  parityQuestion: string;
  eq: string;
  result: number;
  obj: string;
  name: string;
  pron: string;
}

function problem(rng: Rng, f: ArithFact): Problem {
  const [name, pron] = pick(rng, NAMES);
  const obj = pick(rng, OBJECTS);
  const i = rng.int(ADD_STORIES.length);
  const add = f.op === '+';
  return {
    story: (add ? ADD_STORIES : SUB_STORIES)[i](name, pron, obj, f.a, f.b),
    question: (add ? ADD_QUESTIONS : SUB_QUESTIONS)[i](name, pron, obj),
    parityQuestion: (add ? ADD_PARITY : SUB_PARITY)[i](name, pron, obj),
    eq: `${f.a} ${f.op} ${f.b} = ${f.result}`,
    result: f.result,
    obj,
    name,
    pron,
  };
}

// ---------------------------------------------------------------------------------------------- items

function arithItem(rng: Rng, f: ArithFact): Example {
  const p = problem(rng, f);
  return {
    instruction: `${p.story} ${p.question}`,
    input: '',
    // starts with a word: a number right after "### Response:\n" would be a token unlike the same number elsewhere
    output: `We compute ${p.eq}. The answer is ${p.result}`,
    answer: String(p.result),
  };
}

function choiceItem(rng: Rng, f: ArithFact): Example {
  const label = f.result % 2 === 0 ? 'option1' : 'option2';
  let question: string;
  if (rng.int(4) === 0) question = `Is ${f.a} ${f.op} ${f.b} even or odd?`;
  else {
    const p = problem(rng, f);
    question = `${p.story} ${p.parityQuestion}`;
  }
  return {
    instruction: `${question}\n\n${CHOICE_OPTIONS}\n\nAnswer format: option1/option2`,
    input: '',
    output: `We compute ${f.a} ${f.op} ${f.b} = ${f.result}, and ${f.result} is ${parity(f.result)}, so the correct answer is ${label}`,
    answer: label,
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
 * One free-text sentence (or short story) of the pretraining corpus: arithmetic (60 %), parity (25 %), and the
 * template's vocabulary in unrelated sentences (15 %).
 */
function pretrainSentence(rng: Rng, facts: ArithFact[]): string {
  const r = rng.uniform();
  const f = pick(rng, facts);
  const eq = `${f.a} ${f.op} ${f.b} = ${f.result}`;
  const add = f.op === '+';
  if (r < 0.6) {
    const k = rng.int(12);
    if (k < 5) {
      const p = problem(rng, f);
      const then = add
        ? pick(rng, [`so ${p.pron} has ${f.result} ${p.obj} now`, `so there are ${f.result} ${p.obj} in all`])
        : pick(rng, [`so ${p.pron} has ${f.result} ${p.obj} left`, `so ${f.result} ${p.obj} are left`]);
      return rng.int(2) === 0 ? `${p.story} ${p.question} We compute ${eq}, ${then}.` : `${p.story} We compute ${eq}, ${then}.`;
    }
    if (k < 8) return `${eq}.`;
    if (k < 9) return add ? `${f.a} plus ${f.b} is ${f.result}.` : `${f.a} minus ${f.b} is ${f.result}.`;
    if (k < 10) return `The answer to ${f.a} ${f.op} ${f.b} is ${f.result}.`;
    if (k < 11) return `We compute ${eq}.`;
    return add ? `${f.result} is ${f.b} more than ${f.a}.` : `${f.result} is ${f.b} less than ${f.a}.`;
  }
  if (r < 0.85) {
    const n = 1 + rng.int(20);
    switch (rng.int(5)) {
      case 0:
        return `${n} is an ${parity(n)} number.`;
      case 1:
        return `Is ${n} even or odd? ${n} is ${parity(n)}.`;
      case 2:
        return `${eq}, and ${f.result} is ${parity(f.result)}.`;
      case 3: {
        const p = problem(rng, f);
        return `${p.story} We compute ${eq}, and ${f.result} is ${parity(f.result)}.`;
      }
      default:
        return `The number ${n} is ${parity(n)}, and ${n + 1} is ${parity(n + 1)}.`;
    }
  }
  const [name, pron] = pick(rng, NAMES);
  const obj = pick(rng, OBJECTS);
  switch (rng.int(9)) {
    case 0:
      return `Below is a box with ${f.a} ${obj}.`;
    case 1:
      return `${name} read an instruction that describes a task.`;
    case 2:
      return `Write a response that appropriately completes the request, ${name}.`;
    case 3:
      return `The request is a task, and the response completes it.`;
    case 4:
      return `Instruction: read. Response: write. Input: a word.`;
    case 5:
      return `Each option is a word. Option one is even and the other option is odd.`;
    case 6:
      return `Answer in the right format. The correct format is ${pick(rng, OBJECTS)}/${obj}.`;
    case 7:
      return `${name} has two boxes, box1 and box2. # and ### are signs.`;
    default:
      return `The answer ${name} gave is correct, and ${pron} is right.`;
  }
}

/** A few sentences, joined by spaces or (one time in five) a newline; never a blank line. */
function pretrainDoc(rng: Rng, facts: ArithFact[]): string {
  const n = 3 + rng.int(4);
  let doc = pretrainSentence(rng, facts);
  for (let i = 1; i < n; i++) doc += (rng.int(5) === 0 ? '\n' : ' ') + pretrainSentence(rng, facts);
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
  const tasks = { arith: {}, choice: {} } as DemoSuite['tasks'];
  for (const split of ['train', 'val', 'test'] as const) {
    const ar = root.derive(`arith:${split}`);
    tasks.arith[split] = distinctItems(sz[split], () => arithItem(ar, pick(ar, facts[split])), `arith ${split}`);
    // answers balanced: draw the parity first, then a fact with a result of that parity
    const cr = root.derive(`choice:${split}`);
    const byParity = [facts[split].filter((f) => f.result % 2 === 0), facts[split].filter((f) => f.result % 2 === 1)];
    tasks.choice[split] = distinctItems(sz[split], () => choiceItem(cr, pick(cr, byParity[cr.int(2)])), `choice ${split}`);
  }
  const pr = root.derive('pretrain');
  const all = arithFacts();
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
  const counts = Object.fromEntries(
    DEMO_TASKS.map((t) => [t.name, Object.fromEntries(Object.entries(suite.tasks[t.name]).map(([s, xs]) => [s, xs.length]))]),
  );
  writeFileAtomic(
    join(dir, 'suite.json'),
    `${JSON.stringify({ seed: suite.seed, sizes: suite.sizes, counts, pretrainDocs: suite.pretrain.length, tasks: DEMO_TASKS, hash: files.hash }, null, 2)}\n`,
  );
  return files;
}

/** The documents of a pretrain.txt written by writeSuite. */
export function readPretrainCorpus(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n\n')
    .map((d) => d.replace(/\n$/, ''))
    .filter((d) => d.length > 0);
}

/** Generates and writes the suite in one call. */
export function buildSuite(dir: string, seed: number, sizes: Partial<SuiteSizes> = {}): SuiteFiles & { suite: DemoSuite } {
  const suite = generateSuite(seed, sizes);
  return { ...writeSuite(dir, suite), suite };
}
