/** Extraction: the smaller model computes exactly what the super-network computes at that configuration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { addLora, loadAdapter, loraModules } from '../../src/adapters/peft.ts';
import { enableQuantAware, enableSparsePeft } from '../../src/adapters/sqft.ts';
import type { LoraLinear } from '../../src/adapters/lora.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet, sampleSubnet } from '../../src/nas/subnet.ts';
import { activeConfig, extractMerged, extractToDir, mergeSubnet } from '../../src/nas/extract.ts';
import { quantizeModel } from '../../src/compress/quantize.ts';
import { PROJECTIONS } from '../../src/models/llama/weights.ts';
import { QuantLinear } from '../../src/nn/quant-linear.ts';
import { dequantize } from '../../src/nn/quantized-weight.ts';
import { countMacs, countParams } from '../../src/nas/cost.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
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
  for (const l of loraModules(m)) for (let i = 0; i < l.base.weight.data.length; i += 2) l.base.weight.data[i] = 0; // a 50 % sparse base
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

/** A GPTQ tiny model (group 8; saved and reloaded, so its scales are the F16 values a checkpoint holds) as an elastic super-network. */
function gptqSuperNet(actOrder: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-extract-gptq-base-'));
  const f = tinyModel(5);
  const rng = new T.Rng(2);
  const samples = Array.from({ length: 4 }, () => Int32Array.from({ length: 12 }, () => rng.int(40)));
  quantizeModel(f, samples, { bits: 4, groupSize: 8, actOrder, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] });
  saveModelDir(dir, f);
  const { space } = superNet();
  const m = loadLlama(dir);
  addLora(m, { rank: 4, alpha: 8, dropout: 0, targets: [...PROJECTIONS] }, 1);
  for (const l of loraModules(m)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
  return { m, space };
}

test('on a GPTQ base, sub-networks extract as INT4 slices of the base grid: merged within the reported error, unmerged (plain and QA) exact', () => {
  for (const qa of [false, true]) {
    const { m, space } = gptqSuperNet(false);
    if (qa) {
      enableSparsePeft(loraModules(m));
      enableQuantAware(loraModules(m));
    }
    for (const [k, cfg] of [namedSubnet(space, 'minimal'), sampleSubnet(space, new T.Rng(3))].entries()) {
      applySubnet(m, space, cfg);
      const expected = logits(m);
      const dir = mkdtempSync(join(tmpdir(), 'lonas-extract-gptq-'));
      const { adapterDir } = extractToDir(m, dir, { merge: false });
      const small = loadLlama(dir);
      assert.ok(
        small.layers.every((l) => PROJECTIONS.every((p) => l.proj[p] instanceof QuantLinear)),
        'every slice INT4',
      );
      loadAdapter(small, adapterDir!);
      assertClose(logits(small), expected, `${qa ? 'QA' : 'plain'} config ${k}: unmerged logits`, { rtol: 1e-5, atol: 1e-5 });

      const { model: merged, requantization } = mergeSubnet(m);
      const { model: float } = mergeSubnet(m, { dequantize: true });
      let max = 0;
      merged.layers.forEach((l, i) => {
        for (const p of PROJECTIONS) {
          const a = dequantize((l.proj[p] as QuantLinear).qw),
            b = float.layers[i].proj[p].baseTensors()[0].data;
          for (let j = 0; j < a.length; j++) max = Math.max(max, Math.abs(a[j] - b[j]));
        }
      });
      assert.equal(requantization!.maxAbsError, max, 'the reported max error is the recomputed one');
      if (qa) assertClose(logits(merged), expected, `QA config ${k}: the INT4 merge is the QA forward`, { rtol: 1e-5, atol: 1e-5 });
    }
  }
});

test('an act-order GPTQ slice without a GPTQ layout is refused naming --dequantize, which writes it in float (as extractMerged does in memory)', () => {
  const { m, space } = gptqSuperNet(true);
  applySubnet(m, space, namedSubnet(space, 'minimal'));
  const noLayout = m.layers.some((l) =>
    PROJECTIONS.some((p) => {
      const lora = l.proj[p] as LoraLinear;
      return lora.baseQuant!.gIdx.subarray(0, lora.activeIn).some((g) => g >= Math.ceil(lora.activeIn / 8));
    }),
  );
  assert.ok(noLayout, 'the fixture has a slice whose inputs use a group past ⌈width/8⌉');
  assert.throws(() => mergeSubnet(m), /act-order GPTQ weight .* pass --dequantize/);
  const { model, requantization } = mergeSubnet(m, { dequantize: true });
  assert.equal(requantization, null);
  assert.deepEqual(
    logits(extractMerged(m)),
    logits(model),
    'in memory (search latency), the sub-network is the float model extract --dequantize writes',
  );
  assert.equal(model.config.quantization, null);
  assert.ok(model.layers.every((l) => PROJECTIONS.every((p) => !(l.proj[p] instanceof QuantLinear))));
});
