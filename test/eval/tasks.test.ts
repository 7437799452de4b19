/** The task registry, loading test sets by name or file, answer-type inference, and option parsing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asset } from '../helpers/assets.ts';
import { findTask, loadDataFile, loadTasks, TASKS } from '../../src/eval/tasks.ts';
import { optionsFor } from '../../src/eval/choices.ts';

const DATA = () => asset('datasets', 'llm-adapters', 'dataset');
const SHARED = ['boolq', 'piqa', 'social_i_qa', 'winogrande', 'ARC-Easy', 'ARC-Challenge', 'openbookqa', 'gsm8k'];

const tmp = () => mkdtempSync(join(tmpdir(), 'lonas-eval-'));
const writeJson = (file: string, v: unknown) => {
  writeFileSync(file, JSON.stringify(v));
  return file;
};
const rec = (answer: string, instruction = 'q') => ({ instruction, input: '', output: `the correct answer is ${answer}`, answer });

test('registry: every task of the papers, by name, case-insensitively and by alias', () => {
  for (const n of [...SHARED, 'hellaswag', 'AQuA', 'SVAMP']) assert.ok(findTask(n), n);
  assert.equal(findTask('arc-easy')?.name, 'ARC-Easy');
  assert.equal(findTask('siqa')?.name, 'social_i_qa');
  assert.equal(findTask('obqa')?.name, 'openbookqa');
  assert.equal(findTask('nope'), null);
  assert.deepEqual(findTask('hellaswag')?.answer, { type: 'choice', labels: ['ending1', 'ending2', 'ending3', 'ending4'] });
  assert.equal(findTask('gsm8k')?.maxNewTokens, 256);
  assert.equal(findTask('boolq')?.maxNewTokens, 32);
  assert.equal(new Set(TASKS.map((t) => t.name)).size, TASKS.length);
});

test('every shared task loads from the data directory with golds of its format', () => {
  const tasks = loadTasks(SHARED, DATA());
  assert.deepEqual(
    tasks.map((t) => t.name),
    SHARED,
  );
  for (const t of tasks) assert.ok(t.examples.length >= 500, `${t.name}: ${t.examples.length}`);
  assert.equal(tasks[7].answer.type, 'number');
  assert.equal(tasks[7].examples[0].answer, '576.0');
});

test('hellaswag is found by name when a data directory has it', () => {
  const dir = tmp();
  mkdirSync(join(dir, 'hellaswag'));
  const instruction =
    'Please choose the correct ending to complete the given sentence: A man sits.\n\nEnding1: he stands. Ending2: he flies. Ending3: he sings. Ending4: he naps.\n\nAnswer format: ending1/ending2/ending3/ending4';
  writeJson(join(dir, 'hellaswag', 'test.json'), [rec('ending1', instruction), rec('ending4', instruction)]);
  const [t] = loadTasks(['HellaSwag'], dir);
  assert.equal(t.name, 'hellaswag');
  assert.equal(t.examples.length, 2);
  assert.deepEqual(optionsFor(t.examples[0], (t.answer as { labels: readonly string[] }).labels), [
    { label: 'ending1', text: 'he stands.' },
    { label: 'ending2', text: 'he flies.' },
    { label: 'ending3', text: 'he sings.' },
    { label: 'ending4', text: 'he naps.' },
  ]);
});

test('bad task inputs are clear errors', () => {
  assert.throws(
    () => loadTasks(['boolq', 'mmlu'], DATA()),
    /unknown task 'mmlu'; known tasks: boolq, piqa.*--data FILE --answer-type auto\|choice\|number\|letter/,
  );
  assert.throws(
    () => loadTasks(['hellaswag'], DATA()),
    /task hellaswag: .*hellaswag\/test\.json not found \(this data directory has: .*boolq/,
  );
  assert.throws(() => loadTasks(['boolq'], '/nonexistent/data'), /--data-dir \/nonexistent\/data: no such directory/);
  assert.throws(() => loadTasks([], DATA()), /no tasks given/);
  assert.throws(() => loadTasks(['boolq', 'BoolQ'], DATA()), /listed twice/);
  const dir = tmp();
  mkdirSync(join(dir, 'boolq'));
  writeJson(join(dir, 'boolq', 'test.json'), [rec('true'), rec('maybe')]);
  assert.throws(() => loadTasks(['boolq'], dir), /record 1: gold answer "maybe" is not true\/false/);
});

test('--data FILE: answer type inferred from the golds, or given; unknown formats are clear errors', () => {
  const dir = tmp();
  assert.deepEqual(loadDataFile(writeJson(join(dir, 'a.json'), [rec('answer2'), rec('answer5')])).answer, {
    type: 'choice',
    labels: ['answer1', 'answer2', 'answer3', 'answer4', 'answer5'],
  });
  const math = loadDataFile(writeJson(join(dir, 'm.json'), [rec('12'), rec('3.5'), rec('-4')]));
  assert.deepEqual([math.name, math.answer.type, math.maxNewTokens], ['m', 'number', 256]);
  assert.equal(loadDataFile(writeJson(join(dir, 'aqua.json'), [rec('A'), rec('E')])).answer.type, 'letter');
  assert.equal(loadDataFile(join(DATA(), 'piqa', 'test.json')).name, 'piqa');
  const gsm = loadDataFile(asset('datasets', 'gsm8k-openai', 'test.jsonl'));
  assert.deepEqual([gsm.name, gsm.answer.type], ['gsm8k-openai', 'number']);
  assert.equal(loadDataFile(writeJson(join(dir, 'n.json'), [rec('1'), rec('2')]), 'number').answer.type, 'number');
  assert.throws(
    () => loadDataFile(writeJson(join(dir, 'x.json'), [rec('yes'), rec('no')])),
    /cannot tell the answer type from the gold answers \(e\.g\. "yes", "no"\); answer types: choice .*number .*letter/,
  );
  assert.throws(() => loadDataFile(join(dir, 'n.json'), 'choice'), /--answer-type choice needs gold answers from one label family/);
  assert.throws(() => loadDataFile(join(dir, 'a.json'), 'number'), /--answer-type number needs numeric gold answers/);
  assert.throws(
    () => loadDataFile(join(dir, 'n.json'), 'bogus' as never),
    /unknown answer type 'bogus'; answer types: auto, choice, number, letter/,
  );
  assert.throws(
    () => loadDataFile(writeJson(join(dir, 'noans.json'), [{ instruction: 'q', input: '', output: 'o' }])),
    /record 0 has no "answer" field/,
  );
  assert.throws(() => loadDataFile(join(dir, 'missing.json')), /--data .*missing\.json: no such file/);
});

test('options: labels from "Answer format:", texts from the instruction', () => {
  const [piqa, siqa, wino, arc, boolq] = loadTasks(['piqa', 'social_i_qa', 'winogrande', 'ARC-Easy', 'boolq'], DATA());
  const labels = (t: typeof piqa) => (t.answer as { labels: readonly string[] }).labels;
  const p = optionsFor(piqa.examples[0], labels(piqa));
  assert.deepEqual(
    p.map((o) => o.label),
    ['solution1', 'solution2'],
  );
  assert.match(p[0].text!, /^Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips/);
  assert.match(p[1].text!, /ripped jeans material, you will also need to supply it with a water bottle and a food dish\.$/);
  assert.deepEqual(optionsFor(siqa.examples[0], labels(siqa)), [
    { label: 'answer1', text: 'make a new plan' },
    { label: 'answer2', text: 'Go home and see Riley' },
    { label: 'answer3', text: 'Find somewhere to go' },
  ]);
  assert.deepEqual(optionsFor(wino.examples[0], labels(wino)), [
    { label: 'option1', text: 'Sarah' },
    { label: 'option2', text: 'Maria' },
  ]);
  assert.deepEqual(
    optionsFor(arc.examples[0], labels(arc)).map((o) => o.label),
    ['answer1', 'answer2', 'answer3', 'answer4'],
  );
  assert.deepEqual(optionsFor(boolq.examples[0], labels(boolq)), [
    { label: 'true', text: 'true' },
    { label: 'false', text: 'false' },
  ]);
  // every example of every shared choice task has ≥ 2 options with texts, the gold among them
  for (const t of loadTasks(['boolq', 'piqa', 'social_i_qa', 'winogrande', 'ARC-Easy', 'ARC-Challenge', 'openbookqa'], DATA())) {
    t.examples.forEach((e, i) => {
      const o = optionsFor(e, labels(t));
      assert.ok(o.length >= 2 && o.every((x) => x.text), `${t.name} ${i}`);
      assert.ok(
        o.some((x) => x.label === e.answer),
        `${t.name} ${i}: gold ${e.answer} among ${o.map((x) => x.label)}`,
      );
    });
  }
});
