/**
 * MLP channel reordering on a BF16 base kept in bfloat16 (finetune --reorder-channels, and an adapter's
 * recorded order re-applied at load): the scores, the order and the permuted model equal those of the float32
 * upcast, and the base stays bf16 (its bits are moved, not widened).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { REORDER_MODES, reorderByImportance } from '../../src/nas/importance.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const root = mkdtempSync(join(tmpdir(), 'lonas-reorder-bf16-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'm');
saveModelDir(dir, tinyModel(12), { dtype: 'BF16' });
const rng = new Rng(3);
const samples = Array.from({ length: 3 }, () => Int32Array.from({ length: 9 }, () => rng.int(40)));
const ids = Int32Array.from([1, 8, 30, 2, 17, 5]);
const logits = (m: LlamaModel) => noGrad(() => m.forward(ids, 1, ids.length)).toArray();

for (const mode of REORDER_MODES) {
  test(`${mode} reordering of a bf16-resident base equals reordering its float32 upcast and keeps it bf16`, () => {
    const bf = loadLlama(dir),
      f32 = loadLlama(dir, { weights: 'f32' });
    const order = reorderByImportance(bf, mode, samples);
    assert.deepEqual(order, reorderByImportance(f32, mode, samples));
    assert.ok(
      order.some((p) => p.some((c, k) => c !== k)),
      'the order moves channels',
    );
    assert.equal(bf.weightStorage().f32, 0, 'reordering widened a bf16 weight');
    assert.deepEqual(logits(bf), logits(f32), 'the permuted models compute the same');
  });
}
