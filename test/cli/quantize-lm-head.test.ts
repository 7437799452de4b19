/**
 * `lonas quantize --lm-head` on stories260K (tied, vocab 512, hidden 64; group 32): inspect reports the head
 * as INT4, the quantised head costs a little likelihood, and a QA-SparsePEFT merge keeps the head INT4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STORIES_F32, asset } from '../helpers/assets.ts';
import { lonas, perplexity } from '../helpers/cli.ts';

const ppl = (...model: string[]) => perplexity(...model).nll;
interface Inspected {
  quantizedProjections: number;
  lmHead: { format: string; bits: number | null; groupSize: number | null; tied: boolean };
}
const inspect = (dir: string) => JSON.parse(lonas('inspect', '--model', dir, '--json')) as Inspected;

test('lonas quantize --lm-head: inspect shows an INT4 head, the QA merge keeps it INT4', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-quant-head-cli-'));
  try {
    const calib = asset('datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json');
    const q = ['--model', STORIES_F32(), '--bits', '4', '--group-size', '32', '--calib', calib, '--nsamples', '8', '--seqlen', '64'];
    lonas('quantize', ...q, '--out', join(dir, 'int4'));
    lonas('quantize', ...q, '--lm-head', '--out', join(dir, 'int4-head'));
    assert.deepEqual(
      inspect(join(dir, 'int4')).lmHead,
      { format: 'F32', bits: null, groupSize: null, tied: true },
      'without --lm-head the head stays the tied float embedding',
    );
    const head = inspect(join(dir, 'int4-head'));
    assert.deepEqual(head.lmHead, { format: 'INT4', bits: 4, groupSize: 32, tied: false });
    assert.equal(head.quantizedProjections, 5 * 7);
    assert.match(
      lonas('inspect', '--model', join(dir, 'int4-head')),
      /\nLM head: INT4 \(GPTQ 4-bit, group 32\), not tied to the embedding\n/,
    );
    assert.equal(JSON.parse(readFileSync(join(dir, 'int4-head', 'lonas_compression.json'), 'utf8')).lm_head, true);

    const dense = ppl('--model', STORIES_F32()),
      int4 = ppl('--model', join(dir, 'int4')),
      int4Head = ppl('--model', join(dir, 'int4-head'));
    assert.ok(
      int4Head !== int4 && int4Head < dense + 0.5,
      `the quantised head changes the model, a little: nll dense ${dense}, int4 ${int4}, +head ${int4Head}`,
    );

    const ft = [
      '--data',
      `${calib}:32`,
      '--steps',
      '3',
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
    lonas('finetune', '--model', join(dir, 'int4-head'), ...ft, '--quantization-aware', '--dropout', '0', '--out', join(dir, 'qa'));
    const qa = ppl('--model', join(dir, 'int4-head'), '--adapter', join(dir, 'qa'));
    lonas('merge', '--model', join(dir, 'int4-head'), '--adapter', join(dir, 'qa'), '--out', join(dir, 'merged'));
    assert.deepEqual(inspect(join(dir, 'merged')).lmHead, head.lmHead, 'the merged model keeps the INT4 head');
    assert.ok(Math.abs(ppl('--model', join(dir, 'merged')) - qa) < 1e-5, 'merged INT4 model == quantisation-aware forward');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
