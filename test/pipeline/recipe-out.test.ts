/** Where a recipe's run goes: a relative `out` is relative to the working directory; a refused `--from` writes nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRecipe } from '../../src/pipeline/recipe.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'lonas.js');

test('a relative "out" is relative to the working directory; the other paths stay relative to the recipe file', () => {
  const recipeDir = mkdtempSync(join(tmpdir(), 'lonas-recipe-dir-'));
  const file = join(recipeDir, 'lora.json');
  const recipe = JSON.parse(readFileSync(join(ROOT, 'recipes', 'lora.json'), 'utf8'));
  writeFileSync(file, JSON.stringify({ ...recipe, model: 'models/base' }));
  const r = loadRecipe(file);
  assert.equal(r.model, join(recipeDir, 'models', 'base'), 'the model beside the recipe');
  assert.equal(r.out, resolve('runs', 'lora-commonsense'), 'runs/${name} under the working directory');
  assert.ok(!r.out.startsWith(recipeDir), `not beside the recipe: ${r.out}`);
});

test('lonas run --from bogus refuses, names the stages, and creates no run directory', () => {
  const recipeDir = mkdtempSync(join(tmpdir(), 'lonas-recipe-dir-'));
  const cwd = mkdtempSync(join(tmpdir(), 'lonas-run-cwd-'));
  mkdirSync(join(recipeDir, 'recipes'));
  const file = join(recipeDir, 'recipes', 'lora.json');
  copyFileSync(join(ROOT, 'recipes', 'lora.json'), file);
  const r = spawnSync(process.execPath, [BIN, 'run', file, '--from', 'bogus'], { cwd, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--from bogus: this recipe's stages are finetune, eval, bench, report/);
  assert.deepEqual(readdirSync(cwd), [], 'nothing in the working directory');
  assert.ok(!existsSync(join(recipeDir, 'recipes', 'runs')), 'nothing beside the recipe');
});
