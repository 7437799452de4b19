/** Extraction: the smaller model computes exactly what the super-network computes at that configuration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { addLora, loadAdapter, loraModules } from '../../src/adapters/peft.ts';
import { enableSparsePeft } from '../../src/adapters/sqft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet, sampleSubnet } from '../../src/nas/subnet.ts';
import { activeConfig, extractToDir } from '../../src/nas/extract.ts';
import { countMacs, countParams } from '../../src/nas/cost.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const ids = Int32Array.from([1, 5, 9, 3, 22, 17, 8, 2, 30, 11, 4, 6]);
const logits = (m: LlamaModel) => T.noGrad(() => m.forward(ids, 2, 6)).toArray();

function superNet() {
  const m = tinyModel(5);
  addLora(m, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, 1);
  const rng = new T.Rng(8);
  for (const l of loraModules(m)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
  const space = resolveSearchSpace(
    {
      groups: [
        ...PRESETS.nls.groups,
        { kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] },
        { kind: 'heads', share: 'layer', fractions: [1, 0.5] },
      ],
    },
    m.config,
    4,
  );
  return { m, space };
}

for (const merge of [true, false]) {
  test(`extracted model (${merge ? 'merged' : 'sliced base + sliced adapter'}) equals the super-network at that configuration`, () => {
    const { m, space } = superNet();
    for (const [k, cfg] of [namedSubnet(space, 'minimal'), sampleSubnet(space, new T.Rng(3)), namedSubnet(space, 'heuristic')].entries()) {
      applySubnet(m, space, cfg);
      const expected = logits(m);
      const params = countParams(m);
      const dir = mkdtempSync(join(tmpdir(), 'lonas-extract-'));
      const { adapterDir } = extractToDir(m, dir, { merge });
      const small = loadLlama(dir);
      if (!merge) loadAdapter(small, adapterDir!);
      assertClose(logits(small), expected, `config ${k} logits`, { rtol: 1e-5, atol: 1e-5 });
      const got = countParams(small);
      if (merge) assert.equal(got.total, params.total - params.adapter, 'merged: base slices only');
      else assert.deepEqual(got, params, 'unmerged: same parameters as the cost model says');
      assert.equal(countMacs(small, 256), countMacs(m, 256) - (merge ? 256 * params.adapter : 0), 'MACs agree (merged: no adapter path)');
      // the merged cost definition counts, before extraction, exactly what extract --merge writes
      if (merge) {
        assert.equal(countParams(m, true).total, got.total, 'merged cost = parameters of the merged model');
        assert.equal(countMacs(m, 256, true), countMacs(small, 256), 'merged cost = MACs of the merged model');
      }
      assert.deepEqual(small.config.layers, activeConfig(m).layers, 'per-layer sizes survive config.json');
      assert.equal(existsSync(join(dir, 'adapter', 'adapter_config.json')), !merge);
    }
  });
}

test('a SparsePEFT adapter extracted unmerged reloads as SparsePEFT: same function as the super-network', () => {
  const { m, space } = superNet();
  for (const l of loraModules(m)) l.base.weight.data.forEach((_, i, a) => i % 2 === 0 && (a[i] = 0)); // a 50 % sparse base
  enableSparsePeft(loraModules(m));
  applySubnet(m, space, sampleSubnet(space, new T.Rng(4)));
  const expected = logits(m);
  const dir = mkdtempSync(join(tmpdir(), 'lonas-extract-sparse-'));
  const { adapterDir } = extractToDir(m, dir, { merge: false });
  assert.equal(JSON.parse(readFileSync(join(adapterDir!, 'lonas_adapter.json'), 'utf8')).mode, 'sparse');
  const small = loadLlama(dir);
  loadAdapter(small, adapterDir!);
  assertClose(logits(small), expected, 'logits of the reloaded extraction', { rtol: 1e-5, atol: 1e-5 });
});
