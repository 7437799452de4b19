/** The search loop on a synthetic score: outputs, the best rule, the evaluation cache and resuming. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSearch } from '../../src/nas/search.ts';
import type { CostRecord, Evaluation, SearchOptions } from '../../src/nas/search.ts';
import { dominates } from '../../src/nas/nsga2.ts';
import { namedCandidates } from '../../src/nas/candidates.ts';
import type { SearchSpace } from '../../src/nas/search-space.ts';
import type { SubnetConfig } from '../../src/nas/subnet.ts';

// 6 groups × 4 choices: a "loss" that grows as widths shrink, MACs proportional to the widths.
const space: SearchSpace = {
  groups: Array.from({ length: 6 }, (_, l) => ({
    id: `layers.${l}.mlp_width`,
    kind: 'mlp_width' as const,
    layers: [l],
    modules: [],
    choices: [16, 12, 8, 4],
  })),
  spec: { groups: [] },
};
const widths = (c: SubnetConfig) => space.groups.map((g) => c[g.id]);
const syntheticLoss = (c: SubnetConfig) => 2 + widths(c).reduce((s, w, l) => s + ((16 - w) / 16) ** 2 * (l + 1) * 0.05, 0);
const cost = (c: SubnetConfig): CostRecord => ({
  params: 1000 + widths(c).reduce((a, b) => a + b, 0) * 10,
  macs: 5000 + widths(c).reduce((a, b) => a + b, 0) * 100,
});

function options(outDir: string, calls: { n: number }, extra: Partial<SearchOptions> = {}): SearchOptions {
  return {
    space,
    outDir,
    objective: 'macs',
    evaluations: 40,
    population: 6,
    seed: 3,
    delta: 0.05,
    chart: false,
    candidates: namedCandidates(space),
    cost,
    costDefinition: { merged: true, seqLen: 64 },
    score: {
      name: 'loss',
      key: 'synthetic-v1',
      evaluate: (c) => {
        calls.n++;
        return syntheticLoss(c);
      },
    },
    ...extra,
  };
}
const summary = (evals: Evaluation[]) => evals.map((e) => [e.source, JSON.stringify(e.config), e.score, e.macs]);

test('search: outputs, a non-dominated front, and best = fewest MACs with loss < ref + delta', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  const calls = { n: 0 };
  const r = await runSearch({ ...options(out, calls), chart: true });
  assert.equal(r.evaluations.length, 3 + 40);
  assert.equal(r.measured, calls.n);
  assert.ok(calls.n <= 43 && calls.n >= 40, 'each distinct configuration measured once');
  assert.equal(r.ref, 2, 'ref = the maximal configuration');
  assert.equal(r.threshold, 2.05);
  const ok = r.evaluations.filter((e) => e.score < 2.05);
  assert.ok(r.satisfied);
  assert.equal(r.best.macs, Math.min(...ok.map((e) => e.macs)));
  assert.ok(r.best.score < 2.05);
  const F = (e: Evaluation) => [e.score, e.macs];
  for (const f of r.front) for (const e of r.evaluations) assert.ok(!dominates(F(e), F(f)), 'nothing dominates a front member');
  for (const e of r.evaluations)
    assert.ok(
      r.front.some((f) => f === e || dominates(F(f), F(e)) || (f.score === e.score && f.macs === e.macs)),
      'every point is on or behind the front',
    );
  assert.deepEqual(
    r.front.map((e) => e.macs),
    [...r.front.map((e) => e.macs)].sort((a, b) => a - b),
    'front by increasing cost',
  );

  const csv = readFileSync(join(out, 'search_progression.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'index,source,config,loss,params,macs,cached');
  assert.equal(csv.length, 1 + r.evaluations.length);
  assert.match(csv[1], /^0,maximal,"\{""layers\.0\.mlp_width"":16,/);
  const pareto = JSON.parse(readFileSync(join(out, 'pareto.json'), 'utf8'));
  assert.equal(pareto.front.length, r.front.length);
  assert.deepEqual(Object.keys(pareto.front[0].objectives), ['loss', 'macs']);
  const best = JSON.parse(readFileSync(join(out, 'best.json'), 'utf8'));
  assert.deepEqual(best.config, r.best.config);
  assert.deepEqual(best.objectives, { loss: r.best.score, macs: r.best.macs });
  assert.equal(best.params, r.best.params);
  // the cost definition the numbers are counted under, recorded with them and named on the chart's axis
  assert.deepEqual(pareto.cost_definition, { merged: true, seq_len: 64 });
  assert.deepEqual(best.cost_definition, { merged: true, seq_len: 64 });
  const svg = readFileSync(join(out, 'pareto.svg'), 'utf8');
  assert.match(svg, /MACs \(merged, 1×64 forward\)/);
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /Pareto front/);
  assert.match(svg, /maximal/);
});

test('search: re-running takes everything from the cache; an interrupted search resumes to the same result', async () => {
  const full = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  const c1 = { n: 0 };
  const a = await runSearch(options(full, c1));
  const cacheBefore = readFileSync(join(full, 'evaluations.jsonl'), 'utf8');
  const c2 = { n: 0 };
  const again = await runSearch(options(full, c2));
  assert.equal(c2.n, 0, 'no evaluation repeated');
  assert.equal(again.measured, 0);
  assert.ok(again.evaluations.every((e) => e.cached));
  assert.equal(readFileSync(join(full, 'evaluations.jsonl'), 'utf8'), cacheBefore, 'the cache is unchanged');
  assert.deepEqual(summary(again.evaluations), summary(a.evaluations));

  // interrupt after 17 measurements (and leave a half-written line behind), then resume
  const part = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  const c3 = { n: 0 };
  const failing = options(part, c3);
  const evaluate = failing.score.evaluate;
  failing.score = {
    ...failing.score,
    evaluate: (c) => {
      if (c3.n === 17) throw new Error('interrupted');
      return evaluate(c);
    },
  };
  await assert.rejects(runSearch(failing), /interrupted/);
  appendFileSync(join(part, 'evaluations.jsonl'), '{"type":"eval","config":{"layers.0');
  const c4 = { n: 0 };
  const resumed = await runSearch(options(part, c4));
  assert.equal(c4.n, c1.n - 17, 'only the missing evaluations are measured');
  assert.deepEqual(summary(resumed.evaluations), summary(a.evaluations), 'same evaluations as an uninterrupted run');
  assert.deepEqual(resumed.best.config, a.best.config);

  // a larger budget extends the finished search
  const c5 = { n: 0 };
  const more = await runSearch(options(full, c5, { evaluations: 52 }));
  assert.deepEqual(summary(more.evaluations.slice(0, a.evaluations.length)), summary(a.evaluations));
  assert.ok(c5.n > 0 && c5.n <= 12);
});

test('search: a cache counted under another cost definition is refused (its params and MACs would be stale)', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  await runSearch(options(out, { n: 0 }));
  await assert.rejects(
    runSearch(options(out, { n: 0 }, { costDefinition: { merged: false, seqLen: 64 } })),
    /different model, adapter, validation data, mode or cost definition/,
  );
  await assert.rejects(runSearch(options(out, { n: 0 }, { costDefinition: { merged: true, seqLen: 128 } })), /cost definition/);
});

test('search: a cache from other settings is refused; accuracy objectives maximise; latency is cached too', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  await runSearch(options(out, { n: 0 }, { evaluations: 6 }));
  await assert.rejects(
    runSearch(options(out, { n: 0 }, { evaluations: 6, score: { name: 'loss', key: 'other', evaluate: () => 1 } })),
    /different model, adapter, validation data, mode or cost definition/,
  );

  const acc = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  let lat = 0;
  const countLatency = (ms: number) => {
    lat++; // counts the latency measurements the search asks for
    return ms;
  };
  const r = await runSearch({
    ...options(acc, { n: 0 }),
    objective: 'latency',
    delta: 0.02,
    evaluations: 20,
    score: { name: 'accuracy', key: 'acc', evaluate: (c) => 0.9 - (syntheticLoss(c) - 2) },
    cost: (c, withLatency) => ({ ...cost(c), ...(withLatency ? { latencyMs: countLatency(cost(c).macs / 1000) } : {}) }),
  });
  assert.equal(r.ref, 0.9);
  assert.ok(r.best.score > 0.88);
  const ok = r.evaluations.filter((e) => e.score > 0.88);
  assert.equal(r.best.latencyMs, Math.min(...ok.map((e) => e.latencyMs!)));
  assert.match(readFileSync(join(acc, 'search_progression.csv'), 'utf8').split('\n')[0], /,accuracy,params,macs,latency_ms,cached$/);
  const measured = lat;
  await runSearch({
    ...options(acc, { n: 0 }),
    objective: 'latency',
    delta: 0.02,
    evaluations: 20,
    score: {
      name: 'accuracy',
      key: 'acc',
      evaluate: () => {
        throw new Error('not cached');
      },
    },
    cost: (c, withLatency) => ({ ...cost(c), ...(withLatency ? { latencyMs: countLatency(0) } : {}) }),
  });
  assert.equal(lat, measured, 'latencies come from the cache');

  // no configuration within delta 0 of the reference: best falls back to the best score, flagged
  const strict = mkdtempSync(join(tmpdir(), 'lonas-search-'));
  const s = await runSearch(options(strict, { n: 0 }, { evaluations: 6, delta: 0 }));
  assert.equal(s.satisfied, false);
  assert.equal(s.best.score, 2);
});
