/** The demo task suite: deterministic from the seed, disjoint splits, files loadable by the data and eval layers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DEMO_TASKS, buildSuite, generateSuite, readPretrainCorpus } from '../../src/demo/tasks.ts';
import type { DemoSuite } from '../../src/demo/tasks.ts';
import { readExamples } from '../../src/io/datasets.ts';
import { loadDataFile } from '../../src/eval/tasks.ts';
import { extractChoice, extractNumber, scoreGeneration } from '../../src/eval/extract.ts';
import type { Example } from '../../src/io/prompt.ts';
import { promptFor } from '../../src/io/prompt.ts';
import { writeDemoTokenizer } from '../../src/demo/tokenizer.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';

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

/** (op, a, b) of an item, from the equation its output writes down. */
function factOf(e: Example): string {
  const m = /^We compute (\d+) ([+-]) (\d+) = (\d+)[.,]/.exec(e.output);
  assert.ok(m, `output states the equation: ${e.output}`);
  const [, a, op, b, r] = m;
  assert.equal(Number(r), op === '+' ? Number(a) + Number(b) : Number(a) - Number(b), e.output);
  assert.ok(e.instruction.includes(` ${a} `) || e.instruction.startsWith(`${a} `) || e.instruction.startsWith(`Is ${a} `), e.instruction);
  assert.ok(e.instruction.includes(` ${b}`), e.instruction);
  return `${a}${op}${b}`;
}

test('same seed gives identical files; another seed gives different ones', () => {
  const [a, b, c] = [tmp(), tmp(), tmp()];
  const fa = buildSuite(a, 5, SIZES),
    fb = buildSuite(b, 5, SIZES),
    fc = buildSuite(c, 6, SIZES);
  const ta = readTree(a),
    tb = readTree(b),
    tc = readTree(c);
  assert.deepEqual(
    [...ta.keys()],
    [
      'pretrain.txt',
      'suite.json',
      'tasks/arith/test.json',
      'tasks/arith/train.json',
      'tasks/arith/val.json',
      'tasks/choice/test.json',
      'tasks/choice/train.json',
      'tasks/choice/val.json',
      'train.json',
      'val.json',
    ],
  );
  assert.deepEqual(ta, tb);
  assert.equal(fa.hash, fb.hash);
  assert.notEqual(fa.hash, fc.hash);
  for (const f of ['pretrain.txt', 'train.json', 'tasks/arith/test.json', 'tasks/choice/test.json'])
    assert.notEqual(ta.get(f), tc.get(f), f);
  // the pretraining corpus does not depend on the downstream sizes (its own random stream)
  assert.deepEqual(generateSuite(5, { ...SIZES, train: 10, test: 5 }).pretrain, generateSuite(5, SIZES).pretrain);
  assert.deepEqual(readPretrainCorpus(fa.pretrain), fa.suite.pretrain);
});

test('splits are disjoint at the level of facts, in both tasks; items are distinct within a split', () => {
  const s: DemoSuite = generateSuite(11, { ...SIZES, train: 800, val: 100, test: 200 });
  const facts = Object.fromEntries(
    (['train', 'val', 'test'] as const).map((sp) => [sp, new Set([...s.tasks.arith[sp], ...s.tasks.choice[sp]].map(factOf))]),
  );
  for (const [x, y] of [
    ['train', 'val'],
    ['train', 'test'],
    ['val', 'test'],
  ] as const) {
    assert.deepEqual(
      [...facts[x]].filter((f) => facts[y].has(f)),
      [],
      `${x} and ${y} share facts`,
    );
  }
  assert.equal(facts.train.size + facts.val.size + facts.test.size, 162, 'every fact is used, by exactly one split');
  for (const t of DEMO_TASKS) {
    for (const sp of ['train', 'val', 'test'] as const) {
      const items = s.tasks[t.name][sp];
      assert.equal(new Set(items.map((e) => e.instruction)).size, items.length, `${t.name} ${sp}: distinct`);
    }
  }
  assert.equal(s.train.length, 1600);
  assert.equal(s.val.length, 200);
  const key = (e: Example) => JSON.stringify(e);
  assert.deepEqual(new Set(s.train.map(key)), new Set([...s.tasks.arith.train, ...s.tasks.choice.train].map(key)));
  const ones = s.tasks.choice.test.filter((e) => e.answer === 'option1').length;
  assert.ok(ones > 0.4 * 200 && ones < 0.6 * 200, `option1 share ${ones}/200`);
});

test('the pretraining corpus states the facts in free text, never in the instruction format', () => {
  const s = generateSuite(3, SIZES);
  const text = s.pretrain.join('\n');
  assert.equal(s.pretrain.length, SIZES.pretrainDocs);
  for (const d of s.pretrain) assert.ok(!d.includes('\n\n') && d.length > 20, d);
  for (const banned of [
    '### Instruction',
    '### Response',
    'Option1',
    'option1',
    'option2',
    'The answer is',
    'correct answer',
    'even or odd?\n',
  ])
    assert.ok(!text.includes(banned), banned);
  assert.match(text, /\d+ \+ \d+ = \d+\./);
  assert.match(text, /We compute \d+ - \d+ = \d+, so/);
  assert.match(text, /\d+ is an (even|odd) number\./);
  // every arithmetic fact appears, so the test split's facts are known to the base model
  const big = generateSuite(3, { ...SIZES, pretrainDocs: 3000 }).pretrain.join(' ');
  for (let a = 1; a <= 9; a++) {
    for (let b = 1; b <= 9; b++) {
      assert.ok(big.includes(`${a} + ${b} = ${a + b}`), `${a} + ${b}`);
      assert.ok(big.includes(`${a + b} - ${b} = ${a}`), `${a + b} - ${b}`);
    }
  }
});

test('every token of the tasks occurs in the pretraining corpus (fine-tuning trains adapters, not embeddings)', () => {
  const dir = tmp();
  writeDemoTokenizer(dir);
  const tok = loadTokenizer(dir);
  const s = generateSuite(0, { ...SIZES, pretrainDocs: 2000 });
  const seen = new Map<number, number>();
  for (const d of s.pretrain) for (const id of tok.encode(d, { addBos: false })) seen.set(id, (seen.get(id) ?? 0) + 1);
  const rare = new Set<string>();
  for (const t of DEMO_TASKS) {
    for (const sp of ['train', 'val', 'test'] as const) {
      for (const e of s.tasks[t.name][sp]) {
        for (const id of tok.encode(promptFor(e, { withResponse: true }), { addBos: false }))
          if ((seen.get(id) ?? 0) < 5) rare.add(tok.decode([id]));
      }
    }
  }
  assert.deepEqual([...rare], []);
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
    assert.match(e.instruction, /(even or odd\?)\n\nOption1: even Option2: odd\n\nAnswer format: option1\/option2$/);
    const [, r, par] = /= (\d+), and \d+ is (even|odd), so the correct answer is option[12]$/.exec(e.output)!;
    assert.equal(par, Number(r) % 2 === 0 ? 'even' : 'odd');
    assert.equal(e.answer, par === 'even' ? 'option1' : 'option2');
    assert.equal(extractChoice(e.output, ['option1', 'option2']), e.answer);
    assert.ok(scoreGeneration(choice.answer, e.output, e.answer!).correct);
  }
  const meta = JSON.parse(readFileSync(join(dir, 'suite.json'), 'utf8'));
  assert.equal(meta.seed, 2);
  assert.equal(meta.hash, files.hash);
  assert.deepEqual(meta.counts.arith, { train: SIZES.train, val: SIZES.val, test: SIZES.test });
});

test('bad sizes are clear errors', () => {
  assert.throws(() => generateSuite(1, { train: -1 }), /size train must be a non-negative integer/);
  assert.throws(() => generateSuite(1, { test: 1.5 }), /size test must be a non-negative integer/);
  assert.throws(() => generateSuite(1, { val: 20000 }), /cannot draw 20000 distinct arith val items/);
});
