/** The pieces of data-parallel training that need no mpirun: row shards, token weights, per-row dropout, the world. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBatches } from '../../src/io/batches.ts';
import { IGNORE_INDEX } from '../../src/io/batches.ts';
import { Rng, dropout, tensor } from '../../src/tensor/index.ts';
import { checkBatchSplit, shardBatch } from '../../src/dist/data-parallel.ts';
import { SINGLE_PROCESS, launchedRanks, world } from '../../src/dist/mpi.ts';

const examples = [5, 9, 3, 7, 2].map((n, i) => ({
  inputIds: Array.from({ length: n }, (_, t) => 10 + i * 10 + t),
  labels: Array.from({ length: n }, (_, t) => (t < 2 ? IGNORE_INDEX : 10 + i * 10 + t)), // prompt tokens not trained
}));

test('shards partition the rows of a global micro-batch, keep its T, and their token weights sum to 1', () => {
  const [batch] = makeBatches(examples, 5, { padId: 0, seed: 1 });
  for (const size of [1, 2, 3, 5, 7]) {
    const shards = Array.from({ length: size }, (_, rank) => shardBatch(batch, { rank, size }));
    const rows = shards.flatMap((s) => s?.rows ?? []);
    assert.deepEqual(rows, [0, 1, 2, 3, 4], `${size} ranks cover every row once, in order`);
    assert.equal(shards.filter((s) => s === null).length, Math.max(0, size - 5), 'a rank without rows gets null');
    let tokens = 0;
    for (const s of shards) {
      if (!s) continue;
      assert.equal(s.batch.T, batch.T);
      s.rows.forEach((b, j) => {
        assert.deepEqual(
          [...s.batch.inputIds.subarray(j * batch.T, (j + 1) * batch.T)],
          [...batch.inputIds.subarray(b * batch.T, (b + 1) * batch.T)],
        );
        assert.equal(s.batch.indices[j], batch.indices[b]);
      });
      tokens += s.batch.lossTokens;
    }
    assert.equal(tokens, batch.lossTokens, "the shards' target tokens add up to the batch's");
  }
});

test('a world that does not divide --batch-size is a clear error', () => {
  assert.throws(
    () => checkBatchSplit(6, { size: 4 }),
    /--batch-size 6 is the global micro-batch, split over the 4 ranks of this mpirun job: use a multiple of 4/,
  );
  assert.doesNotThrow(() => checkBatchSplit(8, { size: 4 }));
});

test('dropout with one stream per row gives each row the mask it gets in any other batch', () => {
  const [B, T, C] = [4, 3, 8];
  const x = tensor(
    Float32Array.from({ length: B * T * C }, (_, i) => i + 1),
    [B, T, C],
  );
  const streams = () => Array.from({ length: B }, (_, b) => new Rng(7).derive(`row ${b}`));
  const whole = dropout(x, 0.5, streams()).data;
  const rs = streams();
  for (let b = 0; b < B; b++) {
    const row = tensor(x.data.slice(b * T * C, (b + 1) * T * C), [1, T, C]);
    assert.deepEqual([...dropout(row, 0.5, [rs[b]]).data], [...whole.subarray(b * T * C, (b + 1) * T * C)], `row ${b}`);
  }
  const kept = [...whole].filter((v) => v !== 0).length;
  assert.ok(kept > 0.3 * whole.length && kept < 0.7 * whole.length, `about half kept (${kept} of ${whole.length})`);
  assert.throws(() => dropout(x, 0.5, [new Rng(1), new Rng(2), new Rng(3), new Rng(4), new Rng(5)]), /do not split into 5 rows/);
});

test('outside mpirun the world is this process alone and MPI is not loaded', () => {
  assert.equal(launchedRanks({}), null);
  assert.equal(launchedRanks({ OMPI_COMM_WORLD_SIZE: '4' }), 4);
  assert.equal(launchedRanks({ PMI_SIZE: '3' }), 3);
  if (launchedRanks() === null) assert.equal(world(), SINGLE_PROCESS);
});
