/** Recipes: validation with clear errors, and resume after an interrupted run gives the same result. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRecipe, parseRecipe } from '../../src/pipeline/recipe.ts';
import { stages } from '../../src/pipeline/stages.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'lonas.js');

test("shipped recipes validate and plan the papers' stages", () => {
  const plan = (f: string) => stages(loadRecipe(join(ROOT, 'recipes', f), { out: join(tmpdir(), 'plan') })).map((s) => s.name);
  assert.deepEqual(plan('lonas.json'), ['baseline', 'finetune', 'search', 'extract', 'eval', 'bench', 'report']);
  assert.deepEqual(plan('lora.json'), ['finetune', 'eval', 'bench', 'report']);
  assert.deepEqual(plan('shears.json'), ['sparsify', 'finetune', 'search', 'extract', 'eval', 'bench', 'report']);
  assert.deepEqual(plan('sqft.json'), ['sparsify', 'quantize', 'finetune', 'extract', 'eval', 'bench', 'report']);
});

test('finetune.trainOnInputs: false asks for loss on the response only', () => {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lora.json'), 'utf8'));
  const finetuneCmd = (x: unknown) => stages(parseRecipe(x, 'r.json', ROOT)).find((s) => s.name === 'finetune')!.commands[0];
  assert.ok(!finetuneCmd(r).includes('--no-train-on-inputs'), 'default: prompt and response');
  r.finetune.trainOnInputs = false;
  assert.ok(finetuneCmd(r).includes('--no-train-on-inputs'));
});

test('finetune.sandwich applies to super-network stages only, not to the LoRA baseline', () => {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lonas.json'), 'utf8'));
  r.finetune.sandwich = true;
  const plan = stages(parseRecipe(r, 'r.json', ROOT));
  const cmd = (name: string) => plan.find((s) => s.name === name)!.commands[0];
  assert.ok(cmd('finetune').includes('--sandwich'));
  assert.ok(!cmd('baseline').includes('--sandwich'));
});

test('quantize.lmHead: true quantises the LM head too (--lm-head); off by default', () => {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', 'sqft.json'), 'utf8'));
  const quantizeCmd = (x: unknown) => stages(parseRecipe(x, 'r.json', ROOT)).find((s) => s.name === 'quantize')!.commands[0];
  assert.ok(!quantizeCmd(r).includes('--lm-head'), 'default: projections only');
  r.quantize.lmHead = true;
  assert.ok(quantizeCmd(r).includes('--lm-head'));
});

test('bad recipes name the field and what to do', () => {
  const base = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lonas.json'), 'utf8'));
  // biome-ignore lint/suspicious/noExplicitAny: the test breaks recipes in arbitrary ways
  const bad = (edit: (r: any) => void, re: RegExp) => {
    const r = structuredClone(base);
    edit(r);
    assert.throws(() => parseRecipe(r, 'my.json', ROOT), re);
  };
  bad((r) => (r.method = 'qlora'), /my.json: invalid recipe: field "method"/);
  bad((r) => (r.finetune.rank = -1), /field "finetune.rank"/);
  bad((r) => (r.finetune.rnak = 8), /field "finetune".*rnak/);
  bad((r) => {
    r.method = 'shears';
  }, /field "sparsify": shears prunes the base first/);
  bad((r) => {
    r.data.valSize = 0;
  }, /field "data.valSize": the search needs validation examples/);
  bad((r) => {
    r.data.tasks = [];
  }, /field "data.tasks": name evaluation tasks/);
});

function tinyLora(out: string): string {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lora.json'), 'utf8'));
  r.data.train = ['${assets}/datasets/llm-adapters/dataset/ARC-Easy/train.json:48'];
  r.data.tasks = ['ARC-Easy'];
  // 40 short steps with a checkpoint every 2: a wide window to interrupt fine-tuning in the middle
  r.finetune = {
    ...r.finetune,
    steps: 40,
    rank: 4,
    alpha: 8,
    cutoffLen: 64,
    gradAccum: 1,
    batchSize: 2,
    extraArgs: ['--checkpoint-every', '2'],
  };
  r.eval = { ...r.eval, beams: 1, limit: 4, maxNewTokens: 4 };
  r.bench = { promptLen: 16, genLen: 4, repeats: 1 };
  const file = join(out, 'recipe.in.json');
  writeFileSync(file, JSON.stringify(r));
  return file;
}

test('one cost definition: the search counts what the run ships (merged as extract, 1×bench.promptLen); every bench row is timed against the first, interleaved', () => {
  const lonas = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lonas.json'), 'utf8'));
  const plan = (merge: boolean): Record<string, string[][]> =>
    Object.fromEntries(
      stages(parseRecipe({ ...lonas, extract: { merge }, bench: { promptLen: 48 } }, 'r.json', ROOT)).map((st) => [st.name, st.commands]),
    );
  const flag = (argv: string[], f: string) => (argv.includes(f) ? (argv[argv.indexOf(f) + 1] ?? true) : undefined);
  for (const merge of [true, false]) {
    const p = plan(merge);
    const search = p.search[0];
    assert.equal(flag(search, '--cost-seq-len'), '48', 'MACs counted for the bench prompt length');
    assert.equal(search.includes('--merged'), merge, 'merged exactly when the run ships merged');
    const bench = p.bench;
    assert.equal(bench.length, 4, 'baseline, maximal, heuristic, extracted');
    assert.equal(flag(bench[0], '--ref-model'), undefined, 'the first row is the reference');
    for (const argv of bench.slice(1)) {
      assert.equal(flag(argv, '--ref-model'), flag(bench[0], '--model'));
      assert.equal(flag(argv, '--ref-adapter'), flag(bench[0], '--adapter'));
    }
    for (const argv of bench) assert.equal(argv.includes('--merged'), merge, 'every row counted and timed as shipped');
  }
});

test('a run killed during fine-tuning resumes and ends with the same adapter and accuracies', async () => {
  const whole = mkdtempSync(join(tmpdir(), 'lonas-run-whole-'));
  const a = spawnSync(process.execPath, [BIN, 'run', tinyLora(whole), '--out', join(whole, 'run')], { encoding: 'utf8' });
  assert.equal(a.status, 0, a.stderr);

  const cut = mkdtempSync(join(tmpdir(), 'lonas-run-cut-'));
  const recipe = tinyLora(cut);
  const child = spawn(process.execPath, [BIN, 'run', recipe, '--out', join(cut, 'run')], { stdio: 'ignore', detached: true });
  const ckpt = join(cut, 'run', 'adapter', 'checkpoint', 'trainer_state.json');
  await new Promise<void>((res, rej) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (existsSync(ckpt)) {
        clearInterval(poll);
        process.kill(-child.pid!, 'SIGKILL');
        res();
      } else if (Date.now() - t0 > 60000) {
        clearInterval(poll);
        rej(new Error('no checkpoint appeared'));
      }
    }, 20);
  });
  await new Promise((res) => child.on('exit', res));
  assert.ok(!existsSync(join(cut, 'run', 'stages', 'finetune.json')), 'killed before fine-tuning finished');
  const b = spawnSync(process.execPath, [BIN, 'run', recipe, '--out', join(cut, 'run')], { encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stderr, /--resume/, 'fine-tuning continued from its checkpoint');
  assert.ok(
    readFileSync(join(cut, 'run', 'adapter', 'adapter_model.safetensors')).equals(
      readFileSync(join(whole, 'run', 'adapter', 'adapter_model.safetensors')),
    ),
    'same adapter bytes',
  );
  const acc = (dir: string) =>
    JSON.parse(readFileSync(join(dir, 'run', 'summary.json'), 'utf8')).rows.map((r: { perTask: unknown }) => r.perTask);
  assert.deepEqual(acc(cut), acc(whole));
  for (const f of ['report.html', 'summary.json']) assert.ok(readdirSync(join(cut, 'run')).includes(f));
  // a finished run re-run does nothing; a changed recipe is refused
  const c = spawnSync(process.execPath, [BIN, 'run', recipe, '--out', join(cut, 'run')], { encoding: 'utf8' });
  assert.match(c.stderr, /stage eval: done earlier/);
  const changed = JSON.parse(readFileSync(recipe, 'utf8'));
  changed.finetune.lr = 1e-3;
  writeFileSync(recipe, JSON.stringify(changed));
  const d = spawnSync(process.execPath, [BIN, 'run', recipe, '--out', join(cut, 'run')], { encoding: 'utf8' });
  assert.notEqual(d.status, 0);
  assert.match(d.stderr, /holds a run of a different recipe/);
});
