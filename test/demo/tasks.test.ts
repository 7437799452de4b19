/** The demo task suite: deterministic from the seed, disjoint splits, files loadable by the data and eval layers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CATEGORIES, DEMO_TASKS, OPPOSITES, buildSuite, generateSuite } from '../../src/demo/tasks.ts';
import type { DemoSuite } from '../../src/demo/tasks.ts';
import { readExamples } from '../../src/io/datasets.ts';
import { loadDataFile } from '../../src/eval/tasks.ts';
import { extractChoice, extractNumber, scoreGeneration } from '../../src/eval/extract.ts';
import type { Example } from '../../src/io/prompt.ts';

const SIZES = { pretrainDocs: 300, train: 200, val: 40, test: 60 };
const tmp = () => mkdtempSync(join(tmpdir(), 'lonas-demo-'));

/** Every file under dir, relative path → contents. */
function readTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return out;
}

test('same seed gives identical files; another seed gives different ones', () => {
  const [a, b, c] = [tmp(), tmp(), tmp()];
  const fa = buildSuite(a, 5, SIZES), fb = buildSuite(b, 5, SIZES), fc = buildSuite(c, 6, SIZES);
  const ta = readTree(a), tb = readTree(b), tc = readTree(c);
  assert.deepEqual([...ta.keys()], [
    'pretrain.txt', 'suite.json',
    'tasks/arith/test.json', 'tasks/arith/train.json', 'tasks/arith/val.json',
    'tasks/choice/test.json', 'tasks/choice/train.json', 'tasks/choice/val.json',
    'train.json', 'val.json',
  ]);
  assert.deepEqual(ta, tb);
  assert.equal(fa.hash, fb.hash);
  assert.notEqual(fa.hash, fc.hash);
  for (const f of ['pretrain.txt', 'train.json', 'tasks/arith/test.json', 'tasks/choice/test.json']) assert.notEqual(ta.get(f), tc.get(f), f);
  // the pretraining corpus does not depend on the downstream sizes (its own random stream)
  assert.deepEqual(generateSuite(5, { ...SIZES, train: 10, test: 5 }).pretrain, generateSuite(5, SIZES).pretrain);
});

/** The facts an item is about: arithmetic (op, a, b); category words; opposite pairs; number pairs. */
function factsOf(e: Example): string[] {
  const arith = /^We compute (\d+) ([+-]) (\d+) = (\d+)\./.exec(e.output);
  if (arith) return [`arith:${arith[1]}${arith[2]}${arith[3]}`];
  const m = /^(.*)\n\nOption1: (\S+) Option2: (\S+)\n\nAnswer format: option1\/option2$/.exec(e.instruction);
  assert.ok(m, `choice layout: ${JSON.stringify(e.instruction)}`);
  const [, q, o1, o2] = m;
  if (q.startsWith('Which number')) return [`pair:${[Number(o1), Number(o2)].sort((x, y) => x - y).join(',')}`];
  if (q.startsWith('What is the opposite of')) {
    const word = /of (\w+)\?$/.exec(q)![1];
    const pairOf = (w: string) => OPPOSITES.findIndex((p) => p.includes(w));
    return [`opp:${pairOf(word)}`, `opp:${pairOf(o1)}`, `opp:${pairOf(o2)}`];
  }
  return [`word:${o1}`, `word:${o2}`];
}

test('splits are disjoint at the level of facts, and items are distinct within a split', () => {
  const s: DemoSuite = generateSuite(11, { ...SIZES, train: 800, val: 100, test: 200 });
  for (const t of DEMO_TASKS) {
    const facts = Object.fromEntries((['train', 'val', 'test'] as const).map((sp) => [sp, new Set(s.tasks[t.name][sp].flatMap(factsOf))]));
    for (const [x, y] of [['train', 'val'], ['train', 'test'], ['val', 'test']] as const) {
      const shared = [...facts[x]].filter((f) => facts[y].has(f));
      assert.deepEqual(shared, [], `${t.name}: ${x} and ${y} share facts`);
    }
    for (const sp of ['train', 'val', 'test'] as const) {
      const items = s.tasks[t.name][sp];
      assert.equal(new Set(items.map((e) => e.instruction)).size, items.length, `${t.name} ${sp}: distinct`);
    }
  }
  // the mixes are exactly the union of the tasks' splits
  assert.equal(s.train.length, 1600);
  assert.equal(s.val.length, 200);
  const key = (e: Example) => JSON.stringify(e);
  assert.deepEqual(new Set(s.train.map(key)), new Set([...s.tasks.arith.train, ...s.tasks.choice.train].map(key)));
  // every category shows up in the test set, answers are balanced
  const choiceTest = s.tasks.choice.test;
  for (const cat of Object.keys(CATEGORIES)) assert.ok(choiceTest.some((e) => e.instruction.includes(`kind of ${cat}?`)), cat);
  const ones = choiceTest.filter((e) => e.answer === 'option1').length;
  assert.ok(ones > 0.35 * choiceTest.length && ones < 0.65 * choiceTest.length, `option1 share ${ones}/${choiceTest.length}`);
});

test('the pretraining corpus states facts in free text, never in the instruction format', () => {
  const s = generateSuite(3, SIZES);
  const text = s.pretrain.join('\n');
  assert.equal(s.pretrain.length, SIZES.pretrainDocs);
  for (const d of s.pretrain) assert.ok(!d.includes('\n\n') && d.length > 20, d); // single newlines only: documents never contain a blank line
  for (const banned of ['### Instruction', '### Response', 'Option1', 'option1', 'The answer is', 'correct answer']) assert.ok(!text.includes(banned), banned);
  assert.match(text, /\d+ \+ \d+ = \d+\./);
  assert.match(text, /is a kind of (animal|fruit|color|vehicle|furniture|clothing|tool)\./);
  assert.match(text, /The opposite of \w+ is \w+\./);
  assert.match(text, /\d+ is larger than \d+\./);
  // every arithmetic fact appears, so the test split's facts are known to the base model
  const big = generateSuite(3, { ...SIZES, pretrainDocs: 3000 }).pretrain.join(' ');
  for (let a = 1; a <= 9; a++) {
    for (let b = 1; b <= 9; b++) {
      assert.ok(big.includes(`${a} + ${b} = ${a + b}`), `${a} + ${b}`);
      assert.ok(big.includes(`${a + b} - ${b} = ${a}`), `${a + b} - ${b}`);
    }
  }
});

test('files load with readExamples and the eval task loader; golds match the answer patterns and outputs', () => {
  const dir = tmp();
  const files = buildSuite(dir, 2, SIZES);
  const train = readExamples(files.train);
  assert.equal(train.length, 2 * SIZES.train);
  assert.equal(readExamples(files.val).length, 2 * SIZES.val);
  for (const e of train) {
    assert.equal(e.input, '');
    assert.ok(e.instruction && e.output && e.answer);
  }
  const arith = loadDataFile(files.test.arith, 'number');
  assert.equal(arith.name, 'arith');
  assert.deepEqual(arith.answer, { type: 'number' });
  assert.equal(arith.examples.length, SIZES.test);
  const choice = loadDataFile(files.test.choice, 'auto'); // inferred: the option1/option2 family
  assert.equal(choice.name, 'choice');
  assert.deepEqual(choice.answer, { type: 'choice', labels: ['option1', 'option2'] });
  assert.equal(loadDataFile(files.valByTask.choice, 'auto').examples.length, SIZES.val);
  assert.deepEqual(loadDataFile(files.valByTask.arith, 'auto').answer, { type: 'number' });
  // the gold outputs score as correct under the harness's own extraction
  for (const e of arith.examples) {
    assert.match(e.output, /^We compute \d+ [+-] \d+ = \d+\. The answer is \d+$/);
    assert.equal(extractNumber(e.output), Number(e.answer));
    assert.ok(scoreGeneration(arith.answer, e.output, e.answer!).correct);
    assert.ok(Number(e.answer) >= 1 && Number(e.answer) <= 18);
  }
  for (const e of choice.examples) {
    assert.equal(e.output, `the correct answer is ${e.answer}`);
    assert.equal(extractChoice(e.output, ['option1', 'option2']), e.answer);
    assert.ok(scoreGeneration(choice.answer, e.output, e.answer!).correct);
  }
  const meta = JSON.parse(readFileSync(join(dir, 'suite.json'), 'utf8'));
  assert.equal(meta.seed, 2);
  assert.equal(meta.hash, files.hash);
  assert.deepEqual(meta.counts.arith, { train: SIZES.train, val: SIZES.val, test: SIZES.test });
});

test('arith answers are right and choice answers name the correct option', () => {
  const s = generateSuite(4, SIZES);
  for (const e of [...s.tasks.arith.train, ...s.tasks.arith.test]) {
    const [, a, op, b, r] = /^We compute (\d+) ([+-]) (\d+) = (\d+)\./.exec(e.output)!;
    assert.equal(Number(r), op === '+' ? Number(a) + Number(b) : Number(a) - Number(b));
    assert.ok(e.instruction.includes(` ${a} `) && e.instruction.includes(` ${b}`), e.instruction);
  }
  const catOf = (w: string) => Object.keys(CATEGORIES).find((c) => CATEGORIES[c].includes(w));
  for (const e of s.tasks.choice.test) {
    const [, q, o1, o2] = /^(.*)\n\nOption1: (\S+) Option2: (\S+)\n/.exec(e.instruction)!;
    const right = e.answer === 'option1' ? o1 : o2, wrong = e.answer === 'option1' ? o2 : o1;
    if (q.startsWith('Which number is larger')) assert.ok(Number(right) > Number(wrong), e.instruction);
    else if (q.startsWith('Which number is smaller')) assert.ok(Number(right) < Number(wrong), e.instruction);
    else if (q.startsWith('What is the opposite of')) {
      const word = /of (\w+)\?$/.exec(q)![1];
      assert.ok(OPPOSITES.some(([x, y]) => (x === word && y === right) || (y === word && x === right)), e.instruction);
      assert.ok(!OPPOSITES.some(([x, y]) => (x === word && y === wrong) || (y === word && x === wrong)), e.instruction);
    } else {
      const cat = /kind of (\w+)\?$/.exec(q)![1];
      assert.equal(catOf(right), cat, e.instruction);
      assert.notEqual(catOf(wrong), cat, e.instruction);
    }
  }
});

test('bad sizes are clear errors', () => {
  assert.throws(() => generateSuite(1, { train: -1 }), /size train must be a non-negative integer/);
  assert.throws(() => generateSuite(1, { test: 1.5 }), /size test must be a non-negative integer/);
  assert.throws(() => generateSuite(1, { val: 20000 }), /cannot draw 20000 distinct arith val items/);
});
