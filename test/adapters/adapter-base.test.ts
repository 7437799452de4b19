/** merge and extract refuse an adapter trained on another base (issue 14, item 7). */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/tensor/index.ts';
import { adapterBaseRecord, addLora, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { weightsFingerprint } from '../../src/io/hf-dir.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { Linear } from '../../src/nn/modules.ts';
import { extractAdapterSubnet } from '../../src/nas/extract-subnet.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { PRESETS } from '../../src/nas/search-space.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const SETTINGS: LoraSettings = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'up_proj'] };

const root = mkdtempSync(join(tmpdir(), 'lonas-adapter-base-'));
after(() => rmSync(root, { recursive: true, force: true }));
const dense = join(root, 'dense'),
  sparse = join(root, 'sparse'),
  wider = join(root, 'wider'),
  adapter = join(root, 'adapter');
saveModelDir(dense, tinyModel());
// the dense model's 50%-sparse copy: every other weight of every projection zeroed
const pruned = tinyModel();
for (const layer of pruned.layers)
  for (const p of PROJECTIONS) {
    const w = (layer.proj[p] as Linear).weight.data;
    for (let i = 0; i < w.length; i += 2) w[i] = 0;
  }
saveModelDir(sparse, pruned);
saveModelDir(wider, tinyModel(1, tinyConfig({ intermediateSize: 32 })));
const trained = loadLlama(dense);
addLora(trained, SETTINGS, 3);
const rng = new Rng(4);
for (const l of loraModules(trained)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
saveAdapter(adapter, trained, SETTINGS, { baseModel: dense, base: adapterBaseRecord(dense), searchSpace: PRESETS.lonas });

function merge(model: string, adapterDir: string, out: string) {
  return spawnSync(process.execPath, [BIN, 'merge', '--model', model, '--adapter', adapterDir, '--out', out], { encoding: 'utf8' });
}

test('merge onto the base the adapter was trained on works', () => {
  const r = merge(dense, adapter, join(root, 'merged'));
  assert.equal(r.status, 0, r.stderr);
});

test('merge onto a pruned copy of the base is an error naming both models', () => {
  const r = merge(sparse, adapter, join(root, 'merged-sparse'));
  assert.notEqual(r.status, 0, 'merging into the sparse copy must fail');
  assert.match(
    r.stderr,
    /lonas_adapter\.json: the adapter .* was trained on the base .*dense, but --model .*sparse is not that base: same shapes, different weights/,
  );
});

test('extract onto a base of other shapes is an error naming both models', () => {
  assert.throws(
    () => extractAdapterSubnet({ model: wider, adapter, subnet: 'maximal', merge: true, out: join(root, 'x'), dtype: 'F32' }),
    /trained on the base .*dense, but --model .*wider is not that base: its tensor names or shapes differ/,
  );
});

test("an unmerged extraction's adapter records the extracted (narrower) base, not the original", () => {
  const out = join(root, 'extracted');
  extractAdapterSubnet({ model: dense, adapter, subnet: 'minimal', out, dtype: 'F32' });
  loadWithAdapter(out, join(out, 'adapter'));
  assert.throws(
    () => loadWithAdapter(dense, join(out, 'adapter')),
    /trained on the base .*extracted, but --model .*dense is not that base/,
  );
});

test('an adapter without the record still loads (PEFT adapters, lonas adapters written before the record)', () => {
  const path = join(adapter, 'lonas_adapter.json');
  const { base, ...rest } = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(base.model, dense);
  writeFileSync(path, JSON.stringify(rest));
  const r = merge(sparse, adapter, join(root, 'merged-unchecked'));
  assert.equal(r.status, 0, r.stderr);
});

test('the fingerprint is of the weights, not of how they are sharded', () => {
  const sharded = join(root, 'dense-sharded');
  saveModelDir(sharded, tinyModel(), { shardBytes: 4096 });
  assert.deepEqual(weightsFingerprint(sharded), weightsFingerprint(dense));
  assert.notDeepEqual(weightsFingerprint(sparse), weightsFingerprint(dense));
});
