/** Wanda / magnitude masks equal the PyTorch reference (prune_wanda, layer by layer) on a tiny model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { type LlamaModel, PROJECTIONS } from '../../src/models/llama/model.ts';
import { fixtureModel } from '../helpers/fixture-model.ts';
import { pruneModel } from '../../src/compress/prune.ts';
import { assertClose } from '../helpers/assert-close.ts';

const fx = new SafetensorsFile(fileURLToPath(new URL('./fixtures/wanda.safetensors', import.meta.url)));

const model = (): LlamaModel => fixtureModel(fx);

const ids = fx.readInt32('calib_ids');
const samples = Array.from({ length: ids.shape[0] }, (_, i) => ids.data.slice(i * ids.shape[1], (i + 1) * ids.shape[1]));
const weightNames = (m: LlamaModel) => [...m.namedParameters().keys()].filter((n) => /_proj\.weight$/.test(n));

function checkMasks(m: LlamaModel, variant: string, pruneOf = (n: string) => fx.readRaw(`${variant}.mask.${n}`)) {
  for (const name of weightNames(m)) {
    const expected = pruneOf(name);
    const w = m.namedParameters().get(name)!.data;
    let mismatches = 0;
    for (let k = 0; k < w.length; k++) if ((expected[k] === 1) !== (w[k] === 0)) mismatches++;
    assert.equal(mismatches, 0, `${variant} ${name}: ${mismatches} mask entries differ from PyTorch`);
  }
}

test('Wanda 50% unstructured: identical masks, exact per-row zero count, same pruned logits', () => {
  const m = model();
  const report = pruneModel(m, samples, { method: 'wanda', sparsity: 0.5, targets: [...PROJECTIONS] });
  checkMasks(m, 'unstructured');
  for (const name of weightNames(m)) {
    const t = m.namedParameters().get(name)!;
    const [out, inF] = t.shape;
    for (let r = 0; r < out; r++) {
      const zeros = t.data.subarray(r * inF, (r + 1) * inF).filter((v) => v === 0).length;
      assert.equal(zeros, Math.floor(inF * 0.5), `${name} row ${r}`);
    }
  }
  assert.equal(report.sparsity, 0.5);
  const logits = T.noGrad(() => m.forward(ids.data, ids.shape[0], ids.shape[1])).toArray();
  assertClose(logits, fx.readFloat32('logits_pruned').data, 'pruned logits', { rtol: 1e-5, atol: 2e-5 });
});

test('Wanda 60%, 2:4 semi-structured, and magnitude masks equal PyTorch', () => {
  const m60 = model();
  pruneModel(m60, samples, { method: 'wanda', sparsity: 0.6, targets: [...PROJECTIONS] });
  checkMasks(m60, 'unstructured60');
  const nm = model();
  pruneModel(nm, samples, { method: 'wanda', sparsity: 0.5, nm: { n: 2, m: 4 }, targets: [...PROJECTIONS] });
  checkMasks(nm, 'nm24');
  for (const name of weightNames(nm)) {
    const w = nm.namedParameters().get(name)!.data;
    for (let g = 0; g < w.length; g += 4)
      assert.equal([0, 1, 2, 3].filter((k) => w[g + k] === 0).length, 2, `${name} group ${g / 4} keeps exactly 2 of 4`);
  }
  const mag = model();
  pruneModel(mag, [], { method: 'magnitude', sparsity: 0.5, targets: [...PROJECTIONS] });
  checkMasks(mag, 'magnitude');
});
