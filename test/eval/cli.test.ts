/** `lonas eval` end to end on stories260K over every shared task: runs, deterministic, results written; clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { Rng } from '../../src/tensor/index.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { addLora, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet } from '../../src/nas/subnet.ts';
import { extractToDir } from '../../src/nas/extract.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const lonas = (...args: string[]) => spawnSync(process.execPath, [BIN, 'eval', ...args], { encoding: 'utf8' });
const DATA = () => asset('datasets', 'llm-adapters', 'dataset');
const CHOICE = ['boolq', 'piqa', 'social_i_qa', 'winogrande', 'ARC-Easy', 'ARC-Challenge', 'openbookqa'];
const tmp = () => mkdtempSync(join(tmpdir(), 'lonas-evalcli-'));

type Summary = {
  mode: string;
  tasks: { task: string; mode: string; count: number; accuracy: number; ci95: number[]; timing?: unknown }[];
  average: { accuracy: number; mode: string };
};
const readSummary = (file: string): Summary => JSON.parse(readFileSync(file, 'utf8'));
const withoutTiming = (s: Summary) => ({ ...s, tasks: s.tasks.map(({ timing: _, ...t }) => t) });
const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

function runTwice(mode: string, tasks: string[], extra: string[] = []) {
  const dir = tmp();
  const runs = [0, 1].map((k) => {
    const out = join(dir, `s${k}.json`),
      preds = join(dir, `p${k}.jsonl`);
    const r = lonas(
      '--model',
      STORIES_F32(),
      '--data-dir',
      DATA(),
      '--tasks',
      tasks.join(','),
      '--mode',
      mode,
      '--limit',
      '3',
      '--batch-size',
      '2',
      '--out',
      out,
      '--predictions',
      preds,
      ...extra,
    );
    assert.equal(r.status, 0, r.stderr);
    return { r, summary: readSummary(out), preds: readLines(preds) };
  });
  return runs;
}

test('generate mode over every shared task: runs, writes summary and predictions, deterministic', () => {
  const tasks = [...CHOICE, 'gsm8k'];
  const [a, b] = runTwice('generate', tasks, ['--max-new-tokens', '24']);
  assert.deepEqual(withoutTiming(a.summary), withoutTiming(b.summary));
  assert.deepEqual(a.preds, b.preds);
  assert.equal(a.summary.mode, 'generate');
  assert.deepEqual(
    a.summary.tasks.map((t) => [t.task, t.mode, t.count]),
    tasks.map((t) => [t, 'generate', 3]),
  );
  for (const t of a.summary.tasks) assert.ok(t.ci95[0] <= t.accuracy && t.accuracy <= t.ci95[1]);
  assert.equal(a.preds.length, 3 * tasks.length);
  for (const p of a.preds) {
    for (const k of ['task', 'index', 'mode', 'prompt', 'output', 'extracted', 'gold', 'correct'])
      assert.ok(k in p, `prediction field ${k}`);
    assert.match(p.prompt, /### Response:\n$/);
    assert.equal(typeof p.output, 'string');
  }
  // stdout: the table, every row says its mode; progress went to stderr
  assert.match(a.r.stdout, /^task +mode +acc %/);
  for (const t of tasks) assert.match(a.r.stdout, new RegExp(`^${t} +generate `, 'm'));
  assert.match(a.r.stdout, /^average \(8 tasks\) +generate /m);
  assert.match(a.r.stderr, /eval \(generate\): gsm8k 3\/3/);
});

test('loglik mode over every shared choice task: deterministic, option scores written', () => {
  const [a, b] = runTwice('loglik', CHOICE);
  assert.deepEqual(withoutTiming(a.summary), withoutTiming(b.summary));
  assert.deepEqual(a.preds, b.preds);
  assert.ok(a.summary.tasks.every((t) => t.mode === 'loglik' && t.count === 3));
  assert.equal(a.summary.average.mode, 'loglik');
  for (const p of a.preds) {
    assert.equal(p.mode, 'loglik');
    assert.ok(p.options.length >= 2 && p.options.every((o: { logprob: number }) => Number.isFinite(o.logprob) && o.logprob < 0));
    const best = p.options.reduce((x: { score: number }, y: { score: number }) => (y.score > x.score ? y : x));
    assert.equal(p.extracted, best.label);
    assert.equal(p.correct, p.extracted === p.gold);
  }
  assert.match(a.r.stdout, /^boolq +loglik /m);
  // --json prints the summary; the text target and a seeded sample run too
  const j = lonas(
    '--model',
    STORIES_F32(),
    '--data-dir',
    DATA(),
    '--tasks',
    'piqa',
    '--mode',
    'loglik',
    '--loglik-target',
    'text',
    '--limit',
    '2',
    '--sample',
    '--seed',
    '3',
    '--json',
  );
  assert.equal(j.status, 0, j.stderr);
  const s = JSON.parse(j.stdout);
  assert.equal(s.protocol.loglikTarget, 'text');
  assert.equal(s.tasks[0].count, 2);
});

test('works on base + elastic adapter at a sub-network and on the extracted model (same scores)', () => {
  const dir = tmp();
  const model = loadLlama(STORIES_F32());
  const settings = {
    rank: 4,
    alpha: 8,
    dropout: 0,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const,
  };
  addLora(model, { ...settings, targets: [...settings.targets] }, 1);
  const rng = new Rng(5);
  for (const l of loraModules(model)) l.loraB.data.forEach((_, i, arr) => (arr[i] = rng.normal() * 0.05));
  saveAdapter(join(dir, 'adapter'), model, { ...settings, targets: [...settings.targets] }, { searchSpace: PRESETS.lonas });
  const space = resolveSearchSpace(PRESETS.lonas, model.config, 4, [...settings.targets]);
  applySubnet(model, space, namedSubnet(space, 'minimal'));
  extractToDir(model, join(dir, 'extracted'), { merge: true, sourceDir: STORIES_F32() });
  const common = ['--data-dir', DATA(), '--tasks', 'boolq,winogrande', '--mode', 'loglik', '--limit', '3'];
  const withAdapter = lonas(
    '--model',
    STORIES_F32(),
    '--adapter',
    join(dir, 'adapter'),
    '--subnet',
    'minimal',
    ...common,
    '--predictions',
    join(dir, 'a.jsonl'),
    '--out',
    join(dir, 'a.json'),
  );
  assert.equal(withAdapter.status, 0, withAdapter.stderr);
  assert.equal(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')).model.subnet, 'minimal');
  const extracted = lonas('--model', join(dir, 'extracted'), ...common, '--predictions', join(dir, 'e.jsonl'));
  assert.equal(extracted.status, 0, extracted.stderr);
  const base = lonas('--model', STORIES_F32(), ...common, '--predictions', join(dir, 'b.jsonl'));
  assert.equal(base.status, 0, base.stderr);
  const scores = (f: string) => readLines(join(dir, f)).flatMap((p) => p.options.map((o: { logprob: number }) => o.logprob));
  const [a, e, b] = [scores('a.jsonl'), scores('e.jsonl'), scores('b.jsonl')];
  a.forEach((x, i) => assert.ok(Math.abs(x - e[i]) < 1e-3, `adapter@minimal ${x} vs extracted ${e[i]}`));
  assert.ok(
    a.some((x, i) => Math.abs(x - b[i]) > 1e-3),
    'the adapter changes the scores',
  );
});

test('bad inputs are clear one-line errors', () => {
  const err = (r: ReturnType<typeof lonas>, re: RegExp) => {
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace');
  };
  err(lonas('--model', STORIES_F32(), '--data-dir', DATA(), '--tasks', 'boolq,nosuchtask'), /unknown task 'nosuchtask'; known tasks: /);
  err(
    lonas('--model', STORIES_F32(), '--data-dir', '/nonexistent/dataset', '--tasks', 'boolq'),
    /--data-dir \/nonexistent\/dataset: no such directory/,
  );
  err(lonas('--model', STORIES_F32(), '--data-dir', DATA(), '--tasks', 'hellaswag'), /hellaswag\/test\.json not found/);
  err(
    lonas('--model', STORIES_F32(), '--data', join(DATA(), 'boolq', 'test.json'), '--answer-type', 'integer'),
    /--answer-type.*integer.*(choices|Allowed).*auto, choice, number, letter/i,
  );
  err(
    lonas('--model', STORIES_F32(), '--data', join(DATA(), 'boolq', 'test.json'), '--answer-type', 'number'),
    /--answer-type number needs numeric gold answers/,
  );
  err(
    lonas('--model', STORIES_F32(), '--data-dir', DATA(), '--tasks', 'gsm8k', '--mode', 'loglik'),
    /gsm8k \(number answers\) has no options: use --mode generate/,
  );
  err(lonas('--model', STORIES_F32(), '--tasks', 'boolq', '--data', 'x.json'), /either --tasks LIST or --data FILE/);
  err(lonas('--model', STORIES_F32(), '--data-dir', DATA(), '--tasks', 'boolq', '--sample'), /--sample needs --limit N/);
});
