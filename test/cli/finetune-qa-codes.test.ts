/**
 * QA-SparsePEFT fine-tuning says how many INT4 codes its merge moves (stories260K INT4, group 32): 8 steps at
 * the default lr 3e-4 move none — the log and run_config.json say "0 of M" and suggest a learning rate, and
 * the merged checkpoint is indeed the base — while a large lr moves N > 0, as many as a recount of the
 * merged checkpoint's codes against the base's finds. The suggested lr moves about 1 % of the codes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../../src/models/llama/checkpoint.ts';
import { lonas, lonasWithLog, quantizeSmall, ARC_EASY_CALIB } from '../helpers/cli.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-qa-codes-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const calib = ARC_EASY_CALIB;
const base = join(dir, 'int4');
quantizeSmall(STORIES_F32(), base);

/** QA fine-tuning at `lr` (8 steps), then `lonas merge`: the log, run_config.json's qa_codes, and the codes that differ from the base's. */
function qaRun(name: string, lr: string[]) {
  const adapter = join(dir, `${name}-adapter`),
    merged = join(dir, name);
  const ft = [
    '--data',
    `${calib}:16`,
    '--steps',
    '8',
    '--rank',
    '4',
    '--alpha',
    '8',
    '--cutoff-len',
    '64',
    '--quantization-aware',
    '--dropout',
    '0',
  ];
  const { stderr } = lonasWithLog('finetune', '--model', base, ...ft, ...lr, '--out', adapter);
  lonas('merge', '--model', base, '--adapter', adapter, '--out', merged);
  const before = loadModelDir(base).quantized,
    after = loadModelDir(merged).quantized;
  let changed = 0,
    total = 0;
  for (const [name, qw] of before) {
    const q = after.get(name)!.q;
    for (let k = 0; k < q.length; k++) if (q[k] !== qw.q[k]) changed++;
    total += q.length;
  }
  const record = JSON.parse(readFileSync(join(adapter, 'run_config.json'), 'utf8')).qa_codes;
  return {
    stderr,
    record,
    recount: { changed, total },
    identical: readFileSync(join(merged, 'model.safetensors')).equals(readFileSync(join(base, 'model.safetensors'))),
  };
}

test('QA at the default lr: "codes changed: 0 of M", a suggested lr, and a merge identical to the base', () => {
  const r = qaRun('default', []);
  assert.equal(r.recount.changed, 0);
  assert.ok(r.identical, 'the merged checkpoint is byte-identical to the base');
  assert.equal(r.record.changed, 0);
  assert.equal(r.record.total, r.recount.total);
  assert.ok(r.record.max_half_steps > 0 && r.record.max_half_steps <= 1, `no update reaches half a step: ${r.record.max_half_steps}`);
  assert.ok(r.record.suggested_lr > 3e-4, `a larger lr is suggested: ${r.record.suggested_lr}`);
  assert.match(
    r.stderr,
    new RegExp(`codes changed: 0 of ${r.recount.total} .*the merged checkpoint equals the base; try --lr ${r.record.suggested_lr} `),
  );
});

test('QA at a large lr: codes changed N > 0, as a recount of the merged checkpoint finds, no suggestion', () => {
  const r = qaRun('large', ['--lr', '3e-2']);
  assert.ok(r.recount.changed > 0);
  assert.deepEqual([r.record.changed, r.record.total], [r.recount.changed, r.recount.total]);
  assert.ok(r.record.max_half_steps > 1);
  assert.equal(r.record.suggested_lr, null);
  assert.match(r.stderr, new RegExp(`codes changed: ${r.recount.changed} of ${r.recount.total} `));
  assert.match(
    r.stderr,
    new RegExp(`\\ndone: .*, INT4 codes changed: ${r.recount.changed} of ${r.recount.total}; adapter written to`),
    'the run summary says it too',
  );
  assert.doesNotMatch(r.stderr, /try --lr/);
});
