/** pruneMask (unstructured): the `prune` lowest of the stable order (score, then input index) in every row. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pruneMask } from '../../src/compress/prune.ts';
import { Rng } from '../../src/tensor/index.ts';

/** The definition: sort each row's indices by score, ties by index, and mark the first ⌊in · sparsity⌋. */
function reference(scores: Float64Array, out: number, inF: number, sparsity: number): Uint8Array {
  const mask = new Uint8Array(out * inF);
  const prune = Math.floor(inF * sparsity);
  for (let r = 0; r < out; r++) {
    const order = Array.from({ length: inF }, (_, j) => j).sort((a, b) => scores[r * inF + a] - scores[r * inF + b] || a - b);
    for (let k = 0; k < prune; k++) mask[r * inF + order[k]] = 1;
  }
  return mask;
}

test('pruneMask equals the stable sort, ties (and ±0) broken by the lower index', () => {
  const rng = new Rng(7);
  for (const [out, inF, levels] of [
    [6, 37, 3],
    [6, 37, 10],
    [6, 37, 1e9],
    [3, 1000, 2], // quickselect over long rows: mostly ties, then distinct values
    [3, 1000, 7],
    [3, 1000, 1e9],
  ]) {
    // few levels: many ties at the threshold; a zero level with both signs
    const scores = Float64Array.from({ length: out * inF }, (_, k) => {
      const v = Math.floor(rng.uniform() * levels) / levels;
      return v === 0 && k % 2 ? -0 : v;
    });
    for (const sparsity of [0, 0.01, 0.5, 0.7, 1]) {
      assert.deepEqual(
        pruneMask(scores, out, inF, sparsity, null),
        reference(scores, out, inF, sparsity),
        `levels ${levels}, sparsity ${sparsity}`,
      );
    }
  }
});

test('pruneMask refuses NaN scores with the row', () => {
  const scores = Float64Array.from([0.1, Number.NaN, Number.NaN, Number.NaN]);
  assert.throws(() => pruneMask(scores, 1, 4, 0.75, null), /row 0 .* NaN scores/);
  // one NaN where the threshold itself is a number: still refused, never silently kept
  const one = Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.5, Number.NaN, 0.7, 0.8]);
  assert.throws(() => pruneMask(one, 2, 4, 0.25, null), /row 1 .* NaN scores/);
});
