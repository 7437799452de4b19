/** Every shipped recipe end to end on stories260K with tiny budgets: all stages run, the report has every number. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'lonas.js');

/** The recipe with every budget shrunk (same stages, same methods). */
function shrink(name: string, dir: string): string {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', name), 'utf8'));
  r.data.train = r.data.train.map((t: string) => `${t.replace(/:\d+$/, '')}:40`).slice(0, 2);
  if (r.data.valSize) r.data.valSize = 8;
  if (r.data.tasks?.length) r.data.tasks = r.data.tasks.slice(0, 2);
  r.finetune = { ...r.finetune, steps: 4, epochs: undefined, rank: 4, alpha: 8, cutoffLen: 64, gradAccum: 1 };
  delete r.finetune.epochs;
  if (r.sparsify) r.sparsify = { ...r.sparsify, nsamples: 4, seqlen: 64 };
  if (r.quantize) r.quantize = { ...r.quantize, nsamples: 4, seqlen: 64, groupSize: 32 };
  if (r.search) r.search = { ...r.search, evals: 4, population: 4, mode: 'loss', limit: 8 };
  r.eval = { ...r.eval, beams: 1, limit: 3, maxNewTokens: 8 };
  r.bench = { promptLen: 16, genLen: 4, repeats: 1 };
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(r));
  return file;
}

for (const name of ['lonas.json', 'shears.json', 'sqft.json']) {
  test(`recipe ${name} runs end to end with tiny budgets`, () => {
    const dir = mkdtempSync(join(tmpdir(), `lonas-recipe-${name}-`));
    const r = spawnSync(process.execPath, [BIN, 'run', shrink(name, dir), '--out', join(dir, 'run')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    const s = JSON.parse(readFileSync(join(dir, 'run', 'summary.json'), 'utf8'));
    assert.ok(s.rows.length >= 3, 'maximal, heuristic and extracted rows');
    for (const row of s.rows) {
      assert.ok(Object.keys(row.perTask).length >= 1 && Number.isFinite(row.average), `${row.name} has accuracies`);
      assert.ok(row.params > 0 && row.macs > 0 && row.latency.prefillMs.median > 0, `${row.name} has measured costs`);
    }
    const html = readFileSync(join(dir, 'run', 'report.html'), 'utf8');
    for (const id of ['results', 'pareto', 'training', 'settings']) assert.match(html, new RegExp(`id="${id}"`));
    assert.match(r.stdout, /report: .*report\.html/);
  });
}
