/** Latency runs interleave the configurations (A B A B …); speed-ups are per-run ratios with their range; the noise rule. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OVERHEAD_DOMINATES, measureLatencies, overheadShare, speedupOf, spread, withinNoise } from '../../src/nas/cost.ts';
import type { Latency } from '../../src/nas/cost.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

/** Records which model each forward call ran on. */
function traced(model: LlamaModel, tag: string, log: string[]): LlamaModel {
  const forward = model.forwardCached.bind(model);
  model.forwardCached = ((...args: Parameters<LlamaModel['forwardCached']>) => {
    log.push(tag);
    return forward(...args);
  }) as LlamaModel['forwardCached'];
  return model;
}

test('measureLatencies times the models in turn, round by round (A B A B …), and reports median and min–max', () => {
  const log: string[] = [];
  const a = traced(tinyModel(1), 'A', log),
    b = traced(tinyModel(2), 'B', log);
  const [la, lb] = measureLatencies([a, b], { promptLen: 8, genLen: 2, repeats: 3, warmup: 1 });
  const turns = log.filter((t, i) => i === 0 || log[i - 1] !== t); // one entry per uninterrupted run of calls
  assert.deepEqual(turns, ['A', 'B', 'A', 'B', 'A', 'B', 'A', 'B'], 'warm-up + 3 rounds, each A then B');
  for (const l of [la, lb]) {
    assert.equal(l.runs.length, 3);
    assert.ok(l.prefillMs.min <= l.prefillMs.median && l.prefillMs.median <= l.prefillMs.max);
    assert.deepEqual(l.prefillMs, spread(l.runs.map((r) => r.prefillMs)));
  }
});

const lat = (prefill: number[], decode: number[]): Latency => ({
  prefillMs: spread(prefill),
  decodeMsPerToken: spread(decode),
  prefillTokensPerSecond: 0,
  decodeTokensPerSecond: 0,
  runs: prefill.map((p, i) => ({ prefillMs: p, decodeMsPerToken: decode[i] })),
});

test('a speed-up is the ratio of each interleaved round, median and min–max; a range containing 1 is within noise', () => {
  // the reference is slow in rounds 1 and 3 (load), the other equally so: the per-run ratios see no gap
  const ref = lat([10, 30, 10, 30], [1, 1, 1, 1]);
  const same = lat([11, 29, 9, 31], [1, 1.1, 0.9, 1]);
  const s = speedupOf(ref, same);
  assert.ok(withinNoise(s.prefill), JSON.stringify(s.prefill));
  assert.ok(withinNoise(s.decode));
  const fast = speedupOf(ref, lat([5, 14, 6, 16], [0.5, 0.6, 0.55, 0.5]));
  assert.deepEqual(fast.prefill, spread([2, 30 / 14, 10 / 6, 30 / 16]));
  assert.ok(!withinNoise(fast.prefill) && fast.prefill.min > 1);
  assert.throws(() => speedupOf(ref, lat([1], [1])), /same rounds/);
  assert.deepEqual(spread([3, 1, 2, 10]), { min: 1, median: 2.5, max: 10 });
});

test('overhead share: a decode step far slower than reading the weights is overhead-dominated; a memory-bound one is not', () => {
  const bytesPerMs = 1e7; // 10 GB/s
  // 260K float32 parameters stream in 0.104 ms: a 1 ms step is ~90% overhead (stories260K, hidden 64)
  assert.ok(overheadShare(1, 260_000, bytesPerMs) > OVERHEAD_DOMINATES);
  // 100M parameters stream in 40 ms: a 48 ms step is memory-bound
  assert.ok(overheadShare(48, 100_000_000, bytesPerMs) < 0.2);
  assert.equal(overheadShare(10, 100_000_000, bytesPerMs), 0, 'faster than the estimate (caches): no overhead');
});
