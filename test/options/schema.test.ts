/** Command schemas: one declaration gives the commander options, the recipe section, the argv and its parsing back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandFrom } from '../../src/cli/command.ts';
import { finetuneSpec } from '../../src/options/finetune.ts';
import type { FinetuneOptions } from '../../src/options/finetune.ts';
import { runSpec } from '../../src/options/run.ts';
import { fromArgv, parseOptions, recipeSection, toArgv } from '../../src/options/schema.ts';
import { parseRecipe } from '../../src/pipeline/recipe.ts';
import { stages } from '../../src/pipeline/stages.ts';

/** What commander hands the action for `lonas finetune ...argv` (through the derived command). */
function parsed(argv: string[]): FinetuneOptions {
  let got: FinetuneOptions | undefined;
  const cmd = commandFrom(finetuneSpec, (o) => {
    got = o;
  })
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  cmd.parse(argv, { from: 'user' });
  return got!;
}

const required = ['--model', 'm', '--data', 'd.json', '--out', 'o'];

test('the derived command applies the schema defaults and types', () => {
  const o = parsed([...required, '--rank', '8', '--targets', 'q_proj,v_proj', '--no-train-on-inputs', '--reorder-channels']);
  assert.equal(o.rank, 8);
  assert.deepEqual(o.targets, ['q_proj', 'v_proj']);
  assert.equal(o.trainOnInputs, false);
  assert.equal(o.reorderChannels, 'magnitude', 'a bare --reorder-channels takes the preset');
  assert.equal(o.alpha, 64);
  assert.equal(o.sandwich, false);
  assert.equal(o.steps, undefined);
  assert.deepEqual(
    parsed(required),
    parseOptions(finetuneSpec, { model: 'm', data: 'd.json', out: 'o' }),
    'commander and the schema agree on every default',
  );
});

test('bad values are errors that name the flag', () => {
  assert.throws(() => parsed([...required, '--rank', '0']), /--rank must be an integer ≥ 1, got "0"/);
  assert.throws(() => parsed([...required, '--lr', 'fast']), /--lr must be > 0, got "fast"/);
  assert.throws(() => parsed([...required, '--targets', 'q_proj,w_proj']), /--targets item "w_proj" must be one of q_proj/);
  assert.throws(() => parsed([...required, '--reorder-channels', 'random']), /Allowed choices are magnitude, activation/);
  assert.throws(() => parsed(['--data', 'd.json', '--out', 'o']), /required option '--model <dir>'/);
  assert.throws(() => parseOptions(finetuneSpec, { model: 'm', data: 'd', out: 'o', rank: 1.5 }), /^Error: --rank must be an integer ≥ 1$/);
});

test('toArgv writes what the command parses back to the same options, leaving defaults out', () => {
  const input = {
    model: 'm',
    data: 'a.json:10,b.jsonl',
    out: 'o',
    rank: 8,
    targets: ['q_proj', 'k_proj'] as const,
    trainOnInputs: false,
    sandwich: true,
    reorderChannels: 'activation' as const,
    alpha: 64,
  };
  const argv = toArgv(finetuneSpec, { ...input, targets: [...input.targets] });
  assert.deepEqual(argv, [
    'finetune',
    '--model',
    'm',
    '--data',
    'a.json:10,b.jsonl',
    '--out',
    'o',
    '--rank',
    '8',
    '--targets',
    'q_proj,k_proj',
    '--no-train-on-inputs',
    '--sandwich',
    '--reorder-channels',
    'activation',
  ]);
  assert.deepEqual(parsed(argv.slice(1)), parseOptions(finetuneSpec, { ...input, targets: [...input.targets] }));
  assert.deepEqual(fromArgv(finetuneSpec, argv.slice(1), 'test'), {
    model: 'm',
    data: 'a.json:10,b.jsonl',
    out: 'o',
    rank: 8,
    targets: ['q_proj', 'k_proj'],
    trainOnInputs: false,
    sandwich: true,
    reorderChannels: 'activation',
  });
  assert.throws(() => fromArgv(finetuneSpec, ['--rnak', '8'], 'my.json'), /my.json: "--rnak" is not an option of lonas finetune/);
  assert.deepEqual(
    toArgv(runSpec, { recipe: 'r.json', from: 'eval' }),
    ['run', 'r.json', '--from', 'eval'],
    'the positional argument comes first',
  );
});

test("a recipe section has the command's fields and defaults, without those the pipeline fills in", () => {
  const section = recipeSection(finetuneSpec, ['model', 'data', 'out', 'valSize', 'seed', 'resume']);
  const defaults = section.parse({});
  const {
    model: _m,
    data: _d,
    out: _o,
    valSize: _v,
    seed: _s,
    resume: _r,
    ...cli
  } = parseOptions(finetuneSpec, { model: 'm', data: 'd', out: 'o' });
  assert.deepEqual(defaults, cli);
  assert.throws(() => section.parse({ out: 'x' }), /Unrecognized key/);
});

test("a recipe's finetune.extraArgs become typed fields; flags the pipeline sets are refused", () => {
  const recipe = (extraArgs: string[]) => ({
    name: 'x',
    method: 'lora',
    model: 'm',
    data: { train: ['t.json'], tasks: ['boolq'] },
    search: null,
    finetune: { extraArgs },
  });
  const r = parseRecipe(recipe(['--checkpoint-every', '2', '--group-by-length']), 'r.json', '/');
  assert.equal(r.finetune.checkpointEvery, 2);
  assert.equal(r.finetune.groupByLength, true);
  assert.ok(!('extraArgs' in r.finetune));
  const argv = stages(r).find((s) => s.name === 'finetune')!.commands[0];
  assert.deepEqual(argv.slice(argv.indexOf('--checkpoint-every'), argv.indexOf('--checkpoint-every') + 2), ['--checkpoint-every', '2']);
  assert.throws(
    () => parseRecipe(recipe(['--out', 'elsewhere']), 'r.json', '/'),
    /r.json: field "finetune.extraArgs": out is set by the pipeline/,
  );
  assert.throws(
    () => parseRecipe(recipe(['--checkpoint-every', 'often']), 'r.json', '/'),
    /r.json: field "finetune.extraArgs": --checkpoint-every must be an integer ≥ 0, got "often"/,
  );
});
