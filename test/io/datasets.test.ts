/** Datasets: real LLM-Adapters / GSM8K files (read in place), prompts, mixing, splits, tokenization, batches. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asset, STORIES_F32 } from '../helpers/assets.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { promptFor } from '../../src/io/prompt.ts';
import { loadTrainingMix, makeBatches, readExamples, splitValidation, tokenizeExample, type Example } from '../../src/io/datasets.ts';

const ARC_E = asset('datasets/llm-adapters/dataset/ARC-Easy/train.json');
const BOOLQ = asset('datasets/llm-adapters/dataset/boolq/train.json');
const GSM8K = asset('datasets/gsm8k-openai/train.jsonl');
const MATH = asset('datasets/llm-adapters/ft-training_set/math_data.json');
const tok = loadTokenizer(STORIES_F32());
const BOS = 1,
  EOS = 2;
const tmp = mkdtempSync(join(tmpdir(), 'lonas-datasets-'));
const tmpFile = (name: string, text: string): string => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

test('LLM-Adapters JSON: ARC-Easy and BoolQ train splits', () => {
  const arc = readExamples(ARC_E);
  assert.equal(arc.length, 2251);
  assert.equal(arc[0].input, '');
  assert.equal(arc[0].output, 'the correct answer is answer2');
  assert.equal(arc[0].answer, 'answer2');
  assert.match(arc[0].instruction, /^Please choose the correct answer to the question: Which factor/);
  assert.ok(arc.every((e) => /^answer[1-5]$/.test(e.answer!)));
  const boolq = readExamples(BOOLQ);
  assert.equal(boolq.length, 9427);
  assert.deepEqual(boolq[0], {
    instruction:
      'Please answer the following question with true or false, question: do iran and afghanistan speak the same language?\n\nAnswer format: true/false',
    input: '',
    output: 'the correct answer is true',
    answer: 'true',
  });
});

test('GSM8K JSONL: question → instruction, whole solution → output, "#### N" → answer (commas dropped)', () => {
  const gsm = readExamples(GSM8K);
  assert.equal(gsm.length, 7473);
  assert.equal(gsm[0].instruction.slice(0, 40), 'Natalia sold clips to 48 of her friends ');
  assert.equal(gsm[0].input, '');
  assert.ok(gsm[0].output.startsWith('Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n'));
  assert.ok(gsm[0].output.endsWith('\n#### 72'));
  assert.equal(gsm[0].answer, '72');
  assert.ok(
    gsm.every((e) => /^-?\d+$/.test(e.answer!)),
    'every answer is an integer without thousands commas',
  );
  assert.ok(
    gsm.some((e) => /#### \d{1,3},\d{3}$/.test(e.output)),
    'the file does use commas ("#### 1,080")',
  );
});

test('math_data.json: numeric answers as "4.0", AQuA-style letter answers too', () => {
  const math = readExamples(MATH);
  assert.equal(math.length, 3260);
  assert.equal(math[0].answer, '4.0');
  assert.ok(math[0].output.startsWith('\nA: She played with 16 kids'));
  const letters = math.filter((e) => /^[A-E]$/.test(e.answer!));
  assert.equal(letters.length, 203);
});

test('prompt template: exact strings with and without input', () => {
  const noInput = { instruction: 'Add 2 and 3.', input: '', output: '5' };
  const withInput = { instruction: 'Translate to French.', input: 'cat', output: 'chat' };
  assert.equal(
    promptFor(noInput, { withResponse: true }),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\nAdd 2 and 3.\n\n### Response:\n5',
  );
  assert.equal(
    promptFor(noInput, { withResponse: false }),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\nAdd 2 and 3.\n\n### Response:\n',
  );
  assert.equal(
    promptFor(withInput, { withResponse: true }),
    'Below is an instruction that describes a task, paired with an input that provides further context. ' +
      'Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\nTranslate to French.\n\n### Input:\ncat\n\n### Response:\nchat',
  );
  assert.ok(promptFor(withInput, { withResponse: false }).endsWith('### Input:\ncat\n\n### Response:\n'));
  const arc = readExamples(ARC_E)[0];
  assert.equal(promptFor(arc, { withResponse: true }), `${promptFor(arc, { withResponse: false })}the correct answer is answer2`);
});

test('training mix: seeded samples without replacement, concatenated and shuffled', () => {
  const specs = [{ file: ARC_E, count: 100 }, { file: BOOLQ, count: 50 }, { file: GSM8K, count: 30 }, { file: MATH }];
  const mix = loadTrainingMix(specs, 42);
  assert.equal(mix.length, 100 + 50 + 30 + 3260);
  const from = (file: string) => new Set(readExamples(file).map((e) => e.instruction));
  const counts = [ARC_E, BOOLQ, GSM8K, MATH].map((f) => {
    const set = from(f);
    return mix.filter((e) => set.has(e.instruction)).length;
  });
  assert.deepEqual(counts, [100, 50, 30, 3260]);
  // (math_data.json itself holds 9 exact duplicate records; the three sampled files hold none)
  const mathSet = from(MATH);
  const sampled = mix.filter((e) => !mathSet.has(e.instruction));
  assert.equal(sampled.length, 180);
  assert.equal(new Set(sampled.map((e) => e.instruction)).size, 180, 'no example drawn twice');
  assert.ok(!mix.slice(0, 100).every((e) => /^answer\d$/.test(e.answer!)), 'shuffled, not in file order');
  assert.deepEqual(loadTrainingMix(specs, 42), mix, 'same seed, same mix');
  assert.notDeepEqual(loadTrainingMix(specs, 43), mix);
  assert.throws(
    () => loadTrainingMix([{ file: ARC_E, count: 5000 }], 0),
    (e: Error) => e.message.includes(ARC_E) && e.message.includes('5000') && e.message.includes('2251'),
  );
  assert.throws(() => loadTrainingMix([{ file: ARC_E, count: 1.5 }], 0), /positive integer/);
  assert.throws(() => loadTrainingMix([], 0), /no data files/);
});

test('validation split: seeded, disjoint, order kept; too large is an error', () => {
  const data = Array.from({ length: 100 }, (_, i) => i);
  const { train, val } = splitValidation(data, 10, 42);
  assert.equal(val.length, 10);
  assert.equal(train.length, 90);
  assert.deepEqual(
    [...train, ...val].sort((a, b) => a - b),
    data,
  );
  assert.deepEqual(
    val,
    [...val].sort((a, b) => a - b),
  );
  assert.deepEqual(splitValidation(data, 10, 42), { train, val });
  assert.notDeepEqual(splitValidation(data, 10, 7).val, val);
  assert.deepEqual(splitValidation(data, 0, 1), { train: data, val: [] });
  assert.throws(() => splitValidation(data, 100, 42), /validation size 100 leaves no training examples \(the data has 100\)/);
});

test('tokenization: BOS first, EOS last, truncation at cutoff without EOS', () => {
  const ex = readExamples(BOOLQ)[0];
  const full = tok.encode(promptFor(ex, { withResponse: true }), { addBos: false, addEos: false });
  const r = tokenizeExample(tok, ex, { cutoffLen: 512 });
  assert.deepEqual(r.inputIds, [BOS, ...full, EOS]);
  assert.deepEqual(r.labels, r.inputIds, 'train on inputs by default: labels = inputs');
  const cut = tokenizeExample(tok, ex, { cutoffLen: 20 });
  assert.deepEqual(cut.inputIds, [BOS, ...full.slice(0, 19)]);
  // exactly cutoffLen tokens before EOS: no room, so no EOS (alpaca-lora's `len < cutoff_len`)
  const exact = tokenizeExample(tok, ex, { cutoffLen: full.length + 1 });
  assert.deepEqual(exact.inputIds, [BOS, ...full]);
  assert.deepEqual(tokenizeExample(tok, ex, { cutoffLen: full.length + 2 }).inputIds, [BOS, ...full, EOS]);
  assert.deepEqual(tokenizeExample(tok, ex, { cutoffLen: 512, addEos: false }).inputIds, [BOS, ...full]);
  assert.throws(() => tokenizeExample(tok, ex, { cutoffLen: 0 }), /cutoffLen/);
});

test('train on inputs false: exactly the prompt tokens are masked, the rest decodes to the response + EOS', () => {
  const cases: Example[] = [
    readExamples(BOOLQ)[0],
    readExamples(GSM8K)[0],
    { instruction: 'Translate to French.', input: 'The cat sleeps.', output: 'Le chat dort.' },
  ];
  for (const ex of cases) {
    const prompt = tok.encode(promptFor(ex, { withResponse: false }), { addBos: true });
    const r = tokenizeExample(tok, ex, { cutoffLen: 2048, trainOnInputs: false });
    assert.deepEqual(r.inputIds.slice(0, prompt.length), prompt, 'the prompt tokens are a prefix');
    assert.ok(r.labels.slice(0, prompt.length).every((l) => l === -100));
    assert.deepEqual(r.labels.slice(prompt.length), r.inputIds.slice(prompt.length));
    assert.equal(tok.decode(r.labels.slice(prompt.length)), `${ex.output}</s>`);
  }
  // cut inside the prompt: nothing left to learn
  const r = tokenizeExample(tok, cases[0], { cutoffLen: 10, trainOnInputs: false });
  assert.deepEqual(r.labels, new Array(10).fill(-100));
});

test('malformed files: errors name the file, the record and the field', () => {
  const ok = { instruction: 'i', input: '', output: 'o', answer: 'a' };
  const missing = tmpFile('missing.json', JSON.stringify([ok, { instruction: 'i', input: '' }]));
  assert.throws(() => readExamples(missing), { message: `${missing}: record 1: field "output" is missing (llm-adapters records need it)` });
  const notString = tmpFile('number.json', JSON.stringify([ok, ok, { ...ok, output: 5 }]));
  assert.throws(() => readExamples(notString), { message: `${notString}: record 2: field "output" is not a string (got number 5)` });
  const badInput = tmpFile('input.json', JSON.stringify([{ ...ok, input: ['x'] }]));
  assert.throws(() => readExamples(badInput), /record 0: field "input" is not a string \(got array \["x"\]\)/);
  const notObject = tmpFile('notobj.json', JSON.stringify([ok, 'text']));
  assert.throws(() => readExamples(notObject), /record 1: expected an object, got string "text"/);

  const gsm = tmpFile('g.jsonl', '{"question":"q","answer":"a\\n#### 1"}\n\n{"question":"q","answer":"no final line"}\n');
  assert.throws(
    () => readExamples(gsm),
    (e: Error) => e.message.startsWith(`${gsm}: record 1 (line 3): field "answer" does not end in "#### <number>"`),
  );
  const gsmMissing = tmpFile('g2.jsonl', '{"question":"q","answer":"#### 1"}\n{"question":"q"}\n');
  assert.throws(() => readExamples(gsmMissing), {
    message: `${gsmMissing}: record 1 (line 2): field "answer" is missing (gsm8k records need it)`,
  });

  const badLine = tmpFile('bad.jsonl', '{"question":"q","answer":"#### 1"}\n{"question":"q","answer":"#### 2"}\n{"question": oops}\n');
  assert.throws(
    () => readExamples(badLine),
    (e: Error) => e.message.startsWith(`${badLine}: line 3: invalid JSON: `),
  );
  const badArray = tmpFile('bad.json', `[\n${JSON.stringify(ok)},\n${JSON.stringify(ok)},\n{"instruction": "i", "output": }\n]`);
  assert.throws(
    () => readExamples(badArray),
    (e: Error) => e.message.startsWith(`${badArray}: invalid JSON in record 2 (line 4, column `),
  );
  const trailingComma = tmpFile('comma.json', `[${JSON.stringify(ok)},\n]`);
  assert.throws(
    () => readExamples(trailingComma),
    /comma\.json: invalid JSON \(line 2, column 1\): a comma after record 0 but no record follows/,
  );
  const badColumn = tmpFile('col.jsonl', '{"question":"q","answer":"#### 1"}\n{"question":"q" "answer":"#### 1"}\n');
  assert.throws(
    () => readExamples(badColumn),
    (e: Error) => e.message.startsWith(`${badColumn}: line 2, column 17: invalid JSON: Expected ','`),
  );
  const unclosed = tmpFile('unclosed.json', `[${JSON.stringify(ok)}`);
  assert.throws(
    () => readExamples(unclosed),
    (e: Error) => e.message.startsWith(`${unclosed}: invalid JSON`),
  );

  const empty = tmpFile('empty.json', ' \n');
  assert.throws(() => readExamples(empty), {
    message: `${empty}: the file is empty (expected a JSON array of {instruction, input, output} records, or JSONL {question, answer} lines)`,
  });
  assert.throws(() => readExamples(tmpFile('none.json', '[]')), /contains no records/);
  assert.throws(() => readExamples(tmpFile('other.json', '[{"text":"x"}]')), /record 0: unrecognised record format.*got fields "text"/);
  assert.throws(() => readExamples(join(tmp, 'absent.json')), /absent\.json: cannot read/);
  // content decides: a JSONL file named .json still reads, and optional fields may be absent
  const jsonlNamedJson = tmpFile('lines.json', '{"instruction":"i","output":"o"}\n{"instruction":"j","output":"p","input":null}\n');
  assert.deepEqual(readExamples(jsonlNamedJson), [
    { instruction: 'i', input: '', output: 'o' },
    { instruction: 'j', input: '', output: 'p' },
  ]);
});

test('batches: right padding, -100 label padding, real-token counts, every example once', () => {
  const tokenized = readExamples(BOOLQ)
    .slice(0, 37)
    .map((e) => tokenizeExample(tok, e, { cutoffLen: 256, trainOnInputs: false }));
  const batches = makeBatches(tokenized, 4, { padId: 0, seed: 1 });
  assert.equal(batches.length, 10);
  assert.equal(batches[9].B, 1);
  assert.deepEqual(
    batches.flatMap((b) => b.indices).sort((a, b) => a - b),
    tokenized.map((_, i) => i),
  );
  for (const b of batches) {
    assert.equal(b.inputIds.length, b.B * b.T);
    assert.equal(b.labels.length, b.B * b.T);
    assert.equal(b.T, Math.max(...b.lengths));
    assert.equal(
      b.realTokens,
      b.lengths.reduce((s, n) => s + n, 0),
    );
    b.indices.forEach((ex, row) => {
      const { inputIds, labels } = tokenized[ex];
      assert.deepEqual([...b.inputIds.subarray(row * b.T, (row + 1) * b.T)], [...inputIds, ...new Array(b.T - inputIds.length).fill(0)]);
      assert.deepEqual([...b.labels.subarray(row * b.T, (row + 1) * b.T)], [...labels, ...new Array(b.T - labels.length).fill(-100)]);
    });
    const lossTokens = b.indices.reduce((s, ex) => s + tokenized[ex].labels.slice(1).filter((l) => l !== -100).length, 0);
    assert.equal(b.lossTokens, lossTokens);
  }
  assert.deepEqual(makeBatches(tokenized, 4, { padId: 0, seed: 1 }), batches, 'deterministic');
  assert.notDeepEqual(makeBatches(tokenized, 4, { padId: 0, seed: 2 })[0].indices, batches[0].indices);
  const inOrder = makeBatches(tokenized, 4, { padId: 0, seed: 1, shuffle: false, dropLast: true });
  assert.equal(inOrder.length, 9);
  assert.deepEqual(inOrder[0].indices, [0, 1, 2, 3]);
  assert.equal(makeBatches(tokenized, 4, { padId: 0, seed: 1, padToMultipleOf: 8 })[0].T % 8, 0);
  assert.throws(() => makeBatches(tokenized, 0, { padId: 0, seed: 1 }), /batch size/);
});

test('batches grouped by length waste less padding', () => {
  const tokenized = readExamples(GSM8K)
    .slice(0, 400)
    .map((e) => tokenizeExample(tok, e, { cutoffLen: 512 }));
  const padded = (bs: ReturnType<typeof makeBatches>) => bs.reduce((s, b) => s + b.B * b.T - b.realTokens, 0);
  const plain = makeBatches(tokenized, 8, { padId: 0, seed: 3 });
  const grouped = makeBatches(tokenized, 8, { padId: 0, seed: 3, groupByLength: true });
  assert.equal(
    grouped.reduce((s, b) => s + b.realTokens, 0),
    plain.reduce((s, b) => s + b.realTokens, 0),
  );
  assert.ok(padded(grouped) < padded(plain) / 4, `padding ${padded(grouped)} vs ${padded(plain)}`);
  assert.deepEqual(makeBatches(tokenized, 8, { padId: 0, seed: 3, groupByLength: true }), grouped);
});
