/** The harness on a scripted model: exactly 100% when it answers right, 0% when wrong; batching, limits, stats. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asset } from '../helpers/assets.ts';
import { loadDataFile, loadTasks } from '../../src/eval/tasks.ts';
import type { TaskData } from '../../src/eval/tasks.ts';
import { runEval, selectExamples } from '../../src/eval/harness.ts';
import type { EvalBackend, Generation, GenerationRequest, ScoreRequest } from '../../src/eval/backend.ts';
import { promptFor } from '../../src/io/prompt.ts';
import { wilson } from '../../src/eval/stats.ts';

const DATA = () => asset('datasets', 'llm-adapters', 'dataset');
const CHOICE = ['boolq', 'piqa', 'social_i_qa', 'winogrande', 'ARC-Easy', 'ARC-Challenge', 'openbookqa'];

/** Extra sets of the other answer formats (AQuA-style letters; a math file with comma/negative golds). */
function extraTasks(): TaskData[] {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-harness-'));
  const aqua = join(dir, 'AQuA.json');
  writeFileSync(
    aqua,
    JSON.stringify(
      ['A', 'C', 'E', 'B'].map((answer, i) => ({
        instruction: `Question ${i}? Answer Choices: (A) 1 (B) 2 (C) 3 (D) 4 (E) 5`,
        input: '',
        output: '',
        answer,
      })),
    ),
  );
  const math = join(dir, 'math.json');
  writeFileSync(
    math,
    JSON.stringify(['1,080', '-3.5', '42.0', '0'].map((answer, i) => ({ instruction: `Problem ${i}`, input: '', output: '', answer }))),
  );
  return [loadDataFile(aqua), loadDataFile(math)];
}

/**
 * A scripted model: it knows every gold answer and answers right (or always wrong). Golds are queued per
 * prompt in file order (social_i_qa repeats a few questions with different golds, so a prompt alone is not a key).
 */
class ScriptedBackend implements EvalBackend {
  private readonly gold = new Map<string, { task: TaskData; answer: string }[]>();
  readonly batches: number[] = [];
  requests: GenerationRequest[] = [];

  constructor(
    tasks: TaskData[],
    private readonly right: boolean,
  ) {
    for (const task of tasks) {
      for (const e of task.examples) {
        const p = promptFor(e, { withResponse: false });
        this.gold.set(p, [...(this.gold.get(p) ?? []), { task, answer: e.answer! }]);
      }
    }
  }

  private next(prompt: string) {
    const queue = this.gold.get(prompt)!;
    return queue.length > 1 ? queue.shift()! : queue[0];
  }

  generate(prompts: string[], req: GenerationRequest): Generation[] {
    this.batches.push(prompts.length);
    this.requests.push(req);
    return prompts.map((p) => {
      const { task, answer } = this.next(p);
      const spec = task.answer;
      let say = answer;
      if (!this.right) {
        if (spec.type === 'choice') say = spec.labels.find((l) => l !== answer)!;
        else if (spec.type === 'letter') say = answer === 'A' ? 'B' : 'A';
        else say = String(Number(answer.replace(/,/g, '')) + 1);
      }
      const text =
        spec.type === 'number'
          ? `Let me think: 2 + 2 = 4. The answer is ${say}.`
          : spec.type === 'letter'
            ? `the answer is ${say}`
            : `the correct answer is ${say}`;
      return { text };
    });
  }

  score(requests: ScoreRequest[]) {
    this.batches.push(requests.length);
    return requests.map((r) => {
      const { answer } = this.next(r.prompt);
      return {
        scores: r.continuations.map((c) => {
          const isGold = c === `the correct answer is ${answer}`;
          return { logprob: isGold === this.right ? -1 : -5, tokens: 5 };
        }),
      };
    });
  }
}

test('generate: a model that answers right scores exactly 100%, a wrong one exactly 0%, on every answer format', async () => {
  const tasks = [...loadTasks([...CHOICE, 'gsm8k'], DATA()), ...extraTasks()];
  for (const right of [true, false]) {
    const r = await runEval(new ScriptedBackend(tasks, right), tasks, { mode: 'generate', limit: 25 });
    for (const t of r.tasks) {
      assert.equal(t.accuracy, right ? 1 : 0, `${t.task}`);
      assert.equal(t.count, Math.min(25, tasks.find((x) => x.name === t.task)!.examples.length));
      assert.equal(t.mode, 'generate');
      assert.equal(t.noAnswer, 0);
    }
    assert.equal(r.average.accuracy, right ? 1 : 0);
    assert.equal(r.average.tasks, tasks.length);
    assert.equal(
      r.predictions.length,
      r.tasks.reduce((n, t) => n + t.count, 0),
    );
    assert.ok(r.predictions.every((p) => p.correct === right && p.extracted !== null && p.output && p.mode === 'generate'));
    for (const t of r.tasks)
      assert.deepEqual(
        r.predictions.filter((p) => p.task === t.task).map((p) => p.index),
        [...Array(t.count).keys()],
        'file order',
      );
  }
});

test('loglik: the most likely option is the prediction: 100% / 0% exactly; non-choice tasks are refused', async () => {
  const tasks = loadTasks(CHOICE, DATA());
  for (const right of [true, false]) {
    const r = await runEval(new ScriptedBackend(tasks, right), tasks, { mode: 'loglik', limit: 30, batchSize: 7 });
    assert.deepEqual(
      r.tasks.map((t) => t.accuracy),
      CHOICE.map(() => (right ? 1 : 0)),
    );
    assert.ok(r.tasks.every((t) => t.mode === 'loglik' && t.count === 30));
    assert.equal(r.average.mode, 'loglik');
    const p = r.predictions[0];
    assert.equal(p.mode, 'loglik');
    assert.deepEqual(
      p.options!.map((o) => o.label),
      ['true', 'false'],
    );
    assert.equal(p.options![0].continuation, 'the correct answer is true');
  }
  const gsm = loadTasks(['gsm8k'], DATA());
  await assert.rejects(
    runEval(new ScriptedBackend(gsm, true), [...tasks, ...gsm], { mode: 'loglik' }),
    /loglik mode scores the options of multiple-choice tasks; gsm8k \(number answers\) has no options: use --mode generate/,
  );
});

test('batching: generate and loglik batches of --batch-size, beam search one prompt at a time', async () => {
  const tasks = loadTasks(['boolq'], DATA());
  const b = new ScriptedBackend(tasks, true);
  await runEval(b, tasks, { mode: 'generate', limit: 19, batchSize: 8 });
  assert.deepEqual(b.batches, [8, 8, 3]);
  assert.deepEqual(b.requests[0], { maxNewTokens: 32, beams: 1 });
  const beam = new ScriptedBackend(tasks, true);
  await runEval(beam, tasks, { mode: 'generate', limit: 3, batchSize: 8, beams: 4, maxNewTokens: 10 });
  assert.deepEqual(beam.batches, [1, 1, 1]);
  assert.deepEqual(beam.requests[0], { maxNewTokens: 10, beams: 4 });
  const math = loadTasks(['gsm8k'], DATA());
  const m = new ScriptedBackend(math, true);
  await runEval(m, math, { mode: 'generate', limit: 2 });
  assert.equal(m.requests[0].maxNewTokens, 256);
  await assert.rejects(runEval(b, tasks, { mode: 'generate', batchSize: 0 }), /--batch-size must be a positive integer/);
});

test('--limit takes the first N; with sample, a seeded sample (same seed, same examples)', () => {
  const [task] = loadTasks(['piqa'], DATA());
  assert.deepEqual(
    selectExamples(task, { limit: 3 }).map((s) => s.index),
    [0, 1, 2],
  );
  const a = selectExamples(task, { limit: 20, sample: true, seed: 7 }).map((s) => s.index);
  assert.deepEqual(
    selectExamples(task, { limit: 20, sample: true, seed: 7 }).map((s) => s.index),
    a,
  );
  assert.notDeepEqual(
    selectExamples(task, { limit: 20, sample: true, seed: 8 }).map((s) => s.index),
    a,
  );
  assert.equal(new Set(a).size, 20);
  assert.deepEqual(
    a,
    [...a].sort((x, y) => x - y),
  );
  assert.notDeepEqual(
    a,
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.equal(selectExamples(task, { limit: 1e9 }).length, task.examples.length);
});

test('skipped examples (too long for the context) count as wrong and are reported', async () => {
  const tasks = loadTasks(['boolq'], DATA());
  const first = promptFor(tasks[0].examples[0], { withResponse: false });
  const backend: EvalBackend = {
    generate: (prompts) =>
      prompts.map((p) =>
        p === first ? { text: '', skipped: true, note: 'too long' } : { text: 'the correct answer is true', clamped: true },
      ),
    score: () => [],
  };
  const r = await runEval(backend, tasks, { mode: 'generate', limit: 4 });
  assert.deepEqual([r.tasks[0].skipped, r.tasks[0].clamped, r.tasks[0].noAnswer], [1, 3, 0]);
  assert.equal(r.predictions[0].correct, false);
  assert.equal(r.predictions[0].note, 'too long');
});

test('Wilson 95% interval', () => {
  const [lo, hi] = wilson(8, 10);
  assert.ok(Math.abs(lo - 0.4902) < 1e-4 && Math.abs(hi - 0.9433) < 1e-4, `${lo} ${hi}`);
  assert.deepEqual(
    wilson(0, 4).map((x) => Math.round(x * 1e4) / 1e4),
    [0, 0.4899],
  );
  assert.deepEqual(
    wilson(4, 4).map((x) => Math.round(x * 1e4) / 1e4),
    [0.5101, 1],
  );
  assert.deepEqual(wilson(0, 0), [0, 1]);
  const [a, b] = wilson(500, 1000);
  assert.ok(Math.abs(a - 0.4691) < 1e-4 && Math.abs(b - 0.5309) < 1e-4);
});
