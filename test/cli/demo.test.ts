/** `lonas demo --quick` (the CI mode): runs end to end; the LoNAS sub-network is smaller and faster than the LoRA baseline; the report has every section. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));

test('lonas demo --quick', () => {
  const out = mkdtempSync(join(tmpdir(), 'lonas-demo-'));
  const r = spawnSync(process.execPath, [BIN, 'demo', '--quick', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  const s = JSON.parse(readFileSync(join(out, 'run', 'summary.json'), 'utf8'));
  const baseline = s.rows.find((x: { name: string }) => x.name === 'LoRA baseline');
  const searched = s.rows.find((x: { extracted: boolean }) => x.extracted);
  assert.ok(baseline && searched, 'baseline and extracted rows');
  assert.ok(searched.params < baseline.params, `smaller: ${searched.params} < ${baseline.params} parameters`);
  assert.ok(searched.macs < baseline.macs, `fewer MACs: ${searched.macs} < ${baseline.macs}`);
  assert.ok(searched.speedup.prefill > 1 || searched.speedup.decode > 1, `faster (measured): ${JSON.stringify(searched.speedup)}`);
  const html = readFileSync(join(out, 'run', 'report.html'), 'utf8');
  for (const id of ['header', 'results', 'pareto', 'training', 'settings'])
    assert.match(html, new RegExp(`id="${id}"`), `report section ${id}`);
  assert.match(r.stdout, /report: .*report\.html/);
  // a second run starts at fine-tuning: the pretrained base and every stage are reused
  const again = spawnSync(process.execPath, [BIN, 'demo', '--quick', '--out', out], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr.slice(-2000));
  assert.match(again.stderr, /pretrained base reused/);
});
