/**
 * Shears/SQFT end to end on stories260K with tiny budgets, perplexity at each stage:
 * sparsify 50% → NLS fine-tune with SparsePEFT → merge (sparsity kept exactly);
 * quantize (INT4, zeros kept) → QA-SparsePEFT fine-tune → merge (an INT4 checkpoint equal to the QA forward).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STORIES_F32 } from '../helpers/assets.ts';
import { lonas, perplexity, quantizeSmall, ARC_EASY_CALIB } from '../helpers/cli.ts';

const ppl = perplexity;
const inspect = (dir: string) =>
  JSON.parse(lonas('inspect', '--model', dir, '--json', '--sparsity')) as {
    nonZero: number;
    params: number;
    quantization: { bits: number } | null;
  };

test('Shears / SQFT pipeline: sparsity and the INT4 grid survive fine-tuning and merging', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-sqft-'));
  const calib = ARC_EASY_CALIB;
  const data = `${calib}:64`;
  const dense = ppl('--model', STORIES_F32()).nll;
  lonas(
    'sparsify',
    '--model',
    STORIES_F32(),
    '--method',
    'wanda',
    '--sparsity',
    '0.5',
    '--calib',
    calib,
    '--nsamples',
    '8',
    '--seqlen',
    '64',
    '--out',
    join(dir, 'sparse'),
  );
  const sparse = inspect(join(dir, 'sparse'));
  const sparsePpl = ppl('--model', join(dir, 'sparse')).nll;
  assert.ok(sparsePpl > dense, `pruning costs likelihood: ${dense} → ${sparsePpl}`);

  const ft = [
    '--data',
    data,
    '--steps',
    '6',
    '--rank',
    '8',
    '--alpha',
    '16',
    '--space',
    'nls',
    '--cutoff-len',
    '64',
    '--grad-accum',
    '1',
    '--lr',
    '2e-3',
  ];
  lonas('finetune', '--model', join(dir, 'sparse'), ...ft, '--sparse-adapter', '--out', join(dir, 'sparse-adapter'));
  const adapted = ppl('--model', join(dir, 'sparse'), '--adapter', join(dir, 'sparse-adapter'), '--subnet', 'heuristic').nll;
  lonas(
    'merge',
    '--model',
    join(dir, 'sparse'),
    '--adapter',
    join(dir, 'sparse-adapter'),
    '--subnet',
    'heuristic',
    '--out',
    join(dir, 'sparse-merged'),
  );
  assert.equal(inspect(join(dir, 'sparse-merged')).nonZero, sparse.nonZero, 'SparsePEFT merge keeps every zero');
  assert.ok(Math.abs(ppl('--model', join(dir, 'sparse-merged')).nll - adapted) < 1e-4, 'merged == unmerged');

  quantizeSmall(join(dir, 'sparse'), join(dir, 'int4'));
  const q = inspect(join(dir, 'int4'));
  assert.equal(q.quantization?.bits, 4);
  assert.ok(q.nonZero <= sparse.nonZero, 'quantising a sparse model keeps its zeros');
  const int4Ppl = ppl('--model', join(dir, 'int4')).nll;
  lonas('finetune', '--model', join(dir, 'int4'), ...ft, '--quantization-aware', '--dropout', '0', '--out', join(dir, 'qa-adapter'));
  const qa = ppl('--model', join(dir, 'int4'), '--adapter', join(dir, 'qa-adapter')).nll;
  lonas('merge', '--model', join(dir, 'int4'), '--adapter', join(dir, 'qa-adapter'), '--out', join(dir, 'qa-merged'));
  const merged = inspect(join(dir, 'qa-merged'));
  assert.equal(merged.quantization?.bits, 4, 'the QA merge is an INT4 checkpoint');
  assert.ok(merged.nonZero <= sparse.nonZero, 'and still sparse');
  assert.ok(Math.abs(ppl('--model', join(dir, 'qa-merged')).nll - qa) < 1e-5, 'INT4 merged model == quantisation-aware forward');
  const cfg = JSON.parse(readFileSync(join(dir, 'qa-merged', 'config.json'), 'utf8'));
  assert.equal(cfg.quantization_config.quant_method, 'gptq');
  process.stderr.write(
    `nll: dense ${dense.toFixed(3)}, 50% sparse ${sparsePpl.toFixed(3)}, +SparsePEFT ${adapted.toFixed(3)}, INT4 ${int4Ppl.toFixed(3)}, +QA ${qa.toFixed(3)}\n`,
  );
});
