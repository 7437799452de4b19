/** Cheap candidates: named sub-networks and the ones read from a training log. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allCandidates, configKey, namedCandidates, trainLogCandidates } from '../../src/nas/candidates.ts';
import type { SearchSpace } from '../../src/nas/search-space.ts';

const space: SearchSpace = {
  groups: [
    { id: 'layers.0.mlp_width', kind: 'mlp_width', layers: [0], modules: [], choices: [8, 6, 4] },
    { id: 'layers.0.rank.q_proj', kind: 'rank', layers: [0], modules: ['q_proj'], choices: [4, 2] },
  ],
  spec: { groups: [] },
};
const cfg = (w: number, r: number) => ({ 'layers.0.mlp_width': w, 'layers.0.rank.q_proj': r });

function writeLog(steps: { config: Record<string, number>; loss: number }[][], extra: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-cand-'));
  const lines = steps.map((micro, i) => JSON.stringify({ type: 'step', step: i + 1, loss: 0, micro }));
  lines.splice(2, 0, JSON.stringify({ type: 'eval', step: 2, val_loss: 1 }), ...extra);
  writeFileSync(join(dir, 'train_log.jsonl'), `${lines.join('\n')}\n`);
  return join(dir, 'train_log.jsonl');
}

test('named candidates: maximal, heuristic (median), minimal', () => {
  assert.deepEqual(
    namedCandidates(space).map((c) => [c.name, configKey(space, c.config)]),
    [
      ['maximal', '8,4'],
      ['heuristic', '6,4'],
      ['minimal', '4,2'],
    ],
  );
});

test('training-log candidates: most frequent, and lowest mean loss over the second half of training', () => {
  const log = writeLog([
    [
      { config: cfg(4, 2), loss: 0.1 },
      { config: cfg(6, 2), loss: 5 },
    ], // first half: ignored for loss (0.1 would win)
    [
      { config: cfg(6, 2), loss: 5 },
      { config: cfg(8, 2), loss: 4 },
    ],
    [
      { config: cfg(6, 2), loss: 1.0 },
      { config: cfg(8, 2), loss: 3 },
    ], // second half starts here (4 steps → from step 3)
    [
      { config: cfg(6, 2), loss: 2.0 },
      { config: cfg(4, 4), loss: 1.2 },
      { config: { 'layers.0.mlp_width': 5, 'layers.0.rank.q_proj': 2 }, loss: 0 },
    ],
  ]);
  const r = trainLogCandidates(log, space, 2);
  assert.equal(r.entries, 8);
  assert.equal(r.skipped, 1, 'a configuration outside the space is skipped');
  assert.equal(r.mostFrequent?.name, 'most-frequent');
  assert.deepEqual(r.mostFrequent?.config, cfg(6, 2));
  assert.match(r.mostFrequent!.note!, /sampled 4 of 8/);
  // second half: (4,4) 1.2; (6,2) mean 1.5; (8,2) 3
  assert.deepEqual(
    r.lowestLoss.map((c) => [c.name, configKey(space, c.config)]),
    [
      ['low-loss-1', '4,4'],
      ['low-loss-2', '6,2'],
    ],
  );
});

test('no log, or every configuration sampled once: no most-frequent candidate; duplicates of named ones are dropped', () => {
  assert.deepEqual(trainLogCandidates('/nonexistent/train_log.jsonl', space), {
    mostFrequent: null,
    lowestLoss: [],
    entries: 0,
    skipped: 0,
  });
  const log = writeLog([[{ config: cfg(8, 4), loss: 1 }], [{ config: cfg(6, 2), loss: 2 }]]);
  const { candidates, log: l } = allCandidates(space, log, 3);
  assert.equal(l.mostFrequent, null);
  assert.deepEqual(
    candidates.map((c) => c.name),
    ['maximal', 'heuristic', 'minimal', 'low-loss-1'],
    'maximal (8,4) is not repeated as low-loss',
  );
  assert.deepEqual(candidates[3].config, cfg(6, 2));
});

test('a corrupt training log is reported with its line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-cand-'));
  writeFileSync(join(dir, 'train_log.jsonl'), '{"type":"step","micro":[]}\n{"type":"st');
  assert.throws(() => trainLogCandidates(join(dir, 'train_log.jsonl'), space), /train_log.jsonl:2: not valid JSON/);
});
