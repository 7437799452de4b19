/**
 * `lonas inspect` on GPTQ models: projections are reported as INT4, and codes that dequantise to 0 by
 * rounding are not sparsity; the zeros GPTQ kept from a pruned source are (lonas_compression.json kept_zeros).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../../src/models/llama/checkpoint.ts';
import { lonas } from '../helpers/cli.ts';
import { STORIES_F32, asset } from '../helpers/assets.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-inspect-gptq-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const calib = asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json');
const gptq = '--bits 4 --group-size 32 --nsamples 4 --seqlen 32'.split(' ');
const quantize = (model: string, out: string) => lonas('quantize', '--model', model, ...gptq, '--calib', calib, '--out', out);
interface Inspected {
  params: number;
  nonZero: number;
  projections: string;
}
const inspect = (model: string) => JSON.parse(lonas('inspect', '--model', model, '--json', '--sparsity')) as Inspected;

test('a dense model quantised to INT4: projections INT4, no sparsity although some codes dequantise to 0', () => {
  const int4 = join(dir, 'dense-int4');
  quantize(STORIES_F32(), int4);
  const rounded = [...loadModelDir(int4).weights.values()].reduce((n, t) => n + t.data.filter((v) => v === 0).length, 0);
  assert.ok(rounded > 0, 'the test needs codes at the zero point');
  const s = inspect(int4);
  assert.equal(s.projections, 'INT4');
  assert.equal(s.nonZero, s.params, 'no weight was pruned');
  assert.match(
    lonas('inspect', '--model', int4, '--sparsity'),
    /stored as F32, projections INT4 \(GPTQ\)\nparameters [\d,]+ \(non-zero [\d,]+, 0\.00% zero\)/,
  );
});

test('a pruned model quantised to INT4 keeps exactly its pruned zeros as sparsity', () => {
  const sparse = join(dir, 'sparse');
  lonas('sparsify', '--model', STORIES_F32(), '--method', 'magnitude', '--sparsity', '0.5', '--out', sparse);
  quantize(sparse, join(dir, 'sparse-int4'));
  assert.equal(inspect(join(dir, 'sparse-int4')).nonZero, inspect(sparse).nonZero);
  assert.equal(inspect(sparse).projections, 'F32');
});
