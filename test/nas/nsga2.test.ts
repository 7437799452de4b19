/** NSGA-II: sorting and crowding on hand-made fronts; a synthetic problem with a known front; determinism. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crowdingDistance, dominates, nonDominatedSort, nsga2 } from '../../src/nas/nsga2.ts';
import { roundHalfEven } from '../../src/util/round.ts';

test('dominance and fast non-dominated sorting on a hand-made set', () => {
  assert.ok(dominates([1, 2], [1, 3]));
  assert.ok(!dominates([1, 3], [1, 3]), 'equal points do not dominate each other');
  assert.ok(!dominates([1, 4], [2, 3]));
  //            0       1       2       3       4       5       6       7 (duplicate of 1)
  const F = [
    [1, 5],
    [2, 3],
    [3, 1],
    [2, 4],
    [4, 4],
    [5, 5],
    [3, 3],
    [2, 3],
  ];
  assert.deepEqual(nonDominatedSort(F), [[0, 1, 2, 7], [3, 6], [4], [5]]);
  assert.deepEqual(nonDominatedSort([]), []);
  assert.deepEqual(nonDominatedSort([[1, 1]]), [[0]]);
});

test('crowding distance: extremes infinite, interior points by normalised neighbour gaps', () => {
  assert.deepEqual(
    crowdingDistance([
      [1, 5],
      [3, 1],
    ]),
    [Infinity, Infinity],
    'fronts of ≤ 2 points',
  );
  assert.deepEqual(
    crowdingDistance([
      [1, 5],
      [2, 3],
      [3, 1],
    ]),
    [Infinity, 1, Infinity],
  );
  const cd = crowdingDistance([
    [0, 10],
    [1, 6],
    [2, 5],
    [6, 1],
    [10, 0],
  ]);
  assert.equal(cd[0], Infinity);
  assert.equal(cd[4], Infinity);
  // p1: x gaps (1 + 1)/10, y gaps (1 + 4)/10 → (0.2 + 0.5)/2; p2: (0.5 + 0.5)/2; p3: (0.8 + 0.5)/2
  [0.35, 0.5, 0.65].forEach((v, k) => assert.ok(Math.abs(cd[k + 1] - v) < 1e-12, `point ${k + 1}: ${cd[k + 1]} vs ${v}`));
  // an objective without spread contributes nothing (pymoo: NaN → 0)
  assert.deepEqual(
    crowdingDistance([
      [0, 1],
      [1, 1],
      [2, 1],
    ]),
    [Infinity, 0.5, Infinity],
    '(1 + 0) / 2 objectives',
  );
});

test('rounding is half-to-even, as numpy', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 2.4999, 2.5001, 3].map(roundHalfEven), [0, 2, 2, 2, 3, 3]);
});

// Genes: 2 "position" genes and 4 "distance" genes, 4 choices each (4,096 genomes). f = (sum(p), −sum(p) + 2·sum(d)):
// the Pareto front is exactly d = 0, one objective vector (s, −s) for each s = 0 … 6.
const P = 2,
  D = 4,
  U = 4;
const synthetic = (g: number[]) => {
  const s = g.slice(0, P).reduce((a, b) => a + b, 0);
  return [s, -s + 2 * g.slice(P).reduce((a, b) => a + b, 0)];
};

test('NSGA-II finds the whole known Pareto front of a synthetic problem (every seed tried)', async () => {
  for (const seed of [0, 1, 2, 3]) {
    const r = await nsga2(synthetic, { sizes: new Array(P + D).fill(U), seed });
    assert.ok(r.evaluated.length <= 200);
    assert.equal(new Set(r.evaluated.map((e) => e.genes.join())).size, r.evaluated.length, 'no genome evaluated twice');
    for (const e of r.evaluated) e.genes.forEach((x) => assert.ok(Number.isInteger(x) && x >= 0 && x < U));
    const values = new Set(r.front.map((i) => i.objectives.join()));
    assert.deepEqual(
      [...values].sort(),
      Array.from({ length: P * (U - 1) + 1 }, (_, s) => `${s},${-s}`).sort(),
      `seed ${seed}: front objective values`,
    );
    assert.ok(
      r.front.every((i) => i.genes.slice(P).every((x) => x === 0)),
      `seed ${seed}: every front genome has d = 0`,
    );
  }
});

test('NSGA-II: the budget is exact, the same seed gives the same run, another seed another one', async () => {
  const f = async (g: number[]) => {
    // async, like a real evaluator; a problem that does not converge early
    const s = g.reduce((a, b) => a + b, 0);
    return [s, -s + 10 * (Math.max(...g) - Math.min(...g))];
  };
  const o = { sizes: [6, 6, 6, 6], evaluations: 120, population: 8 };
  const a = await nsga2(f, { ...o, seed: 7 });
  const b = await nsga2(f, { ...o, seed: 7 });
  const c = await nsga2(f, { ...o, seed: 8 });
  assert.equal(a.evaluated.length, 120);
  assert.equal(a.stopped, undefined);
  assert.deepEqual(
    a.evaluated.map((e) => e.genes),
    b.evaluated.map((e) => e.genes),
  );
  assert.deepEqual(
    a.population.map((e) => e.index),
    b.population.map((e) => e.index),
  );
  assert.notDeepEqual(
    a.evaluated.map((e) => e.genes),
    c.evaluated.map((e) => e.genes),
  );
});

test('NSGA-II in a space smaller than the budget evaluates each configuration at most once and stops', async () => {
  const r = await nsga2((g) => [g[0], -g[0] + g[1]], { sizes: [3, 2], evaluations: 50, population: 4, seed: 0 });
  assert.ok(r.evaluated.length <= 6);
  assert.ok(r.stopped);
  await assert.rejects(
    nsga2(() => [0], { sizes: [] }),
    /at least one gene/,
  );
});
