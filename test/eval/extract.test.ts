/** Answer extraction as the LLM-Adapters / LoNAS scripts do it, on realistic outputs and traps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  extractChoice,
  extractLetter,
  extractNumber,
  numbersMatch,
  parseGoldNumber,
  responseText,
  scoreGeneration,
} from '../../src/eval/extract.ts';
import { LABEL_SETS } from '../../src/eval/tasks.ts';

const choice = (family: string) => ({ type: 'choice' as const, labels: LABEL_SETS[family] });

test('responseText: the continuation up to a further "### Response:", trimmed (the reference split [1].strip())', () => {
  assert.equal(responseText('  the correct answer is true\n'), 'the correct answer is true');
  assert.equal(
    responseText('the correct answer is answer2\n\n### Instruction:\nmore\n\n### Response:\nanswer4'),
    'the correct answer is answer2\n\n### Instruction:\nmore',
  );
  assert.equal(responseText(''), '');
});

test('choice tasks: the first match of the task pattern, case-sensitive', () => {
  // the fine-tuned model's usual output
  assert.equal(extractChoice('the correct answer is false', LABEL_SETS.boolean), 'false');
  assert.equal(extractChoice('the correct answer is solution2', LABEL_SETS.solution), 'solution2');
  assert.equal(extractChoice('the correct answer is answer3', LABEL_SETS.answer), 'answer3');
  assert.equal(extractChoice('the correct answer is ending4', LABEL_SETS.ending), 'ending4');
  assert.equal(extractChoice('the correct answer is option1', LABEL_SETS.option), 'option1');
  // two candidates: the first one in the text wins, whatever the label order
  assert.equal(extractChoice('the correct answer is answer4, not answer1', LABEL_SETS.answer), 'answer4');
  assert.equal(extractChoice('false. It is true that the sky is blue', LABEL_SETS.boolean), 'false');
  assert.equal(extractChoice('option2 is better than option1', LABEL_SETS.option), 'option2');
  // inside words, as re.findall does
  assert.equal(extractChoice('that statement is untrue', LABEL_SETS.boolean), 'true');
  assert.equal(extractChoice('answer10', LABEL_SETS.answer), 'answer1');
  // upper-case variants are not matched (the reference does not lower-case)
  assert.equal(extractChoice('The correct answer is Answer2', LABEL_SETS.answer), null);
  assert.equal(extractChoice('TRUE', LABEL_SETS.boolean), null);
  assert.equal(extractChoice('Solution1', LABEL_SETS.solution), null);
  // nothing
  assert.equal(extractChoice('Once upon a time, there was a little girl named Lily.', LABEL_SETS.boolean), null);
  assert.equal(extractChoice('', LABEL_SETS.answer), null);
  // a label outside the task's set is not an answer (answer5 exists; answer6 does not)
  assert.equal(extractChoice('answer6', LABEL_SETS.answer), null);
  assert.equal(extractChoice('ending5 or ending2', LABEL_SETS.ending), 'ending2');
});

test('math: the last number, commas dropped, negatives and decimals', () => {
  const gsm = 'He needs to cover 36 * 2/3 = 24 sq ft. He needs 24 * 24 = 576 tiles. The answer is 576.';
  assert.equal(extractNumber(gsm), 576);
  assert.equal(extractNumber('The total is 1,080 dollars.'), 1080);
  assert.equal(extractNumber('She has 1,234,567.5 grains'), 1234567.5);
  assert.equal(extractNumber('The temperature dropped to -15 degrees.'), -15);
  assert.equal(extractNumber('Each costs $0.75, so 4 cost 3.5'), 3.5);
  assert.equal(extractNumber('The answer is 7.'), 7); // "7." parses as float("7.")
  assert.equal(extractNumber('10-3 = 7 and then 7-10'), -10); // "-10": the regex takes the minus
  assert.equal(extractNumber('0.5 + .25'), 25); // ".25" has no leading digit: "25"
  assert.equal(extractNumber('no number at all'), null);
  assert.equal(extractNumber(''), null);
  assert.equal(extractNumber('answer: 007'), 7);
});

test('math scoring: |pred - gold| <= 1e-3 against golds like "576.0"; no number is wrong', () => {
  const number = { type: 'number' as const };
  assert.deepEqual(scoreGeneration(number, ' The answer is 576.\n', '576.0'), { extracted: '576', correct: true });
  assert.deepEqual(scoreGeneration(number, 'so 1,080 in total', '1080'), { extracted: '1080', correct: true });
  assert.deepEqual(scoreGeneration(number, 'It is -3.5', '-3.5'), { extracted: '-3.5', correct: true });
  assert.deepEqual(scoreGeneration(number, 'about 576.0004', '576.0'), { extracted: '576.0004', correct: true });
  assert.deepEqual(scoreGeneration(number, 'about 576.01', '576.0'), { extracted: '576.01', correct: false });
  assert.deepEqual(scoreGeneration(number, 'The answer is 576. Then 12 more', '576.0'), { extracted: '12', correct: false });
  assert.deepEqual(scoreGeneration(number, 'I do not know', '5.0'), { extracted: null, correct: false });
  assert.ok(numbersMatch(0.5, 0.5) && !numbersMatch(null, 0) && !numbersMatch(0.002, 0));
  assert.equal(parseGoldNumber('576.0'), 576);
  assert.equal(parseGoldNumber('1,080'), 1080);
  assert.equal(parseGoldNumber('-7'), -7);
  assert.equal(parseGoldNumber('answer1'), null);
  assert.throws(() => scoreGeneration(number, '5', 'five'), /gold answer "five" is not a number/);
});

test('letter answers (AQuA): the first capital A-E anywhere, as the reference', () => {
  assert.equal(extractLetter('The answer is C'), 'C');
  assert.equal(extractLetter('(D) 24 km/h'), 'D');
  assert.equal(extractLetter('Between A and E, the answer is E'), 'B'); // "Between": the reference matches inside words
  assert.equal(extractLetter('the answer is b'), null);
  assert.equal(extractLetter(''), null);
  const letter = { type: 'letter' as const };
  assert.deepEqual(scoreGeneration(letter, 'the answer is C.', 'C'), { extracted: 'C', correct: true });
  assert.deepEqual(scoreGeneration(letter, 'the answer is c.', 'C'), { extracted: null, correct: false });
});

test('choice scoring: exact string match with gold; no answer is wrong', () => {
  assert.deepEqual(scoreGeneration(choice('boolean'), 'the correct answer is true', 'true'), { extracted: 'true', correct: true });
  assert.deepEqual(scoreGeneration(choice('answer'), 'the correct answer is answer1 or answer3', 'answer3'), {
    extracted: 'answer1',
    correct: false,
  });
  assert.deepEqual(scoreGeneration(choice('option'), 'Sarah', 'option1'), { extracted: null, correct: false });
  // a second "### Response:" ends the output the reference looks at
  assert.deepEqual(scoreGeneration(choice('solution'), 'hmm\n### Response:\nsolution1', 'solution1'), { extracted: null, correct: false });
});
