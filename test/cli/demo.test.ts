/**
 * `lonas demo --quick` (the CI mode): runs end to end; the LoNAS sub-network is smaller than the base model under
 * the run's one cost definition (the search's chosen point has the table's MACs); its speed-up is reported with
 * its interval, timed interleaved with the baseline, and the words say what the numbers show (no timing is
 * asserted: under load the machine decides those); the report has every section.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { speedupText } from '../../src/report/format.ts';
import { withinNoise } from '../../src/nas/cost.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));

test('lonas demo --quick', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-demo-'));
  const r = spawnSync(process.execPath, [BIN, 'demo', '--quick', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  const s = JSON.parse(readFileSync(join(out, 'run', 'summary.json'), 'utf8'));
  const baseline = s.rows.find((x: { name: string }) => x.name === 'LoRA baseline');
  const searched = s.rows.find((x: { extracted: boolean }) => x.extracted);
  assert.ok(baseline && searched, 'baseline and extracted rows');
  assert.deepEqual(s.cost, { merged: true, seqLen: 128 }, 'the demo ships merged; MACs for the 128-token bench prompt');
  // the merged baseline is the base model: reductions are against it
  assert.equal(baseline.params, s.reference.params, 'merged LoRA baseline = base model parameters');
  assert.equal(baseline.macs, s.reference.macs);
  assert.ok(searched.params < s.reference.params, `smaller: ${searched.params} < ${s.reference.params} parameters`);
  assert.ok(searched.macs < s.reference.macs, `fewer MACs: ${searched.macs} < ${s.reference.macs}`);
  // one cost definition: the chart's chosen point is the extracted model's cost in the table
  const chosen = s.pareto.points.find((p: { chosen: boolean }) => p.chosen);
  assert.equal(chosen.cost, searched.macs, 'the search counted what was shipped');
  // speed: with its interval, from interleaved runs; the words follow the numbers
  assert.equal(baseline.speedup, null, 'the baseline is the reference');
  for (const k of ['prefill', 'decode']) {
    const sp = searched.speedup[k];
    assert.ok(sp.min <= sp.median && sp.median <= sp.max, `${k}: ${JSON.stringify(sp)}`);
  }
  const html = readFileSync(join(out, 'run', 'report.html'), 'utf8');
  const sentence = html.match(/id="summary-sentence">([^<]*)</)![1];
  if (withinNoise(searched.speedup.prefill)) assert.match(sentence, /the same speed as LoRA baseline within noise/);
  else assert.match(sentence, searched.speedup.prefill.min > 1 ? /faster than LoRA baseline/ : /slower than LoRA baseline/);
  const printed = r.stdout.split('\n').find((l) => l.startsWith(searched.name))!;
  assert.ok(printed.includes(speedupText(searched.speedup.prefill)), `${printed} shows ${speedupText(searched.speedup.prefill)}`);
  assert.match(html, /MACs \(merged, 1×128 forward\)/, 'the chart axis names what it plots');
  for (const id of ['header', 'results', 'pareto', 'training', 'settings'])
    assert.match(html, new RegExp(`id="${id}"`), `report section ${id}`);
  assert.match(r.stdout, /report: .*report\.html/);
  // a second run starts at fine-tuning: the pretrained base and every stage are reused
  const again = spawnSync(process.execPath, [BIN, 'demo', '--quick', '--out', out], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr.slice(-2000));
  assert.match(again.stderr, /pretrained base reused/);
});
