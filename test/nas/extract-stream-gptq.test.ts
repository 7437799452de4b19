/**
 * Layer-streamed merge and extraction onto a GPTQ base (src/nas/extract-stream.ts) against the in-memory
 * path (loadWithAdapter + extractToDir): the same files bit for bit — INT4 slices of the base grid with the
 * merged codes, quantization_config, the zero-point format, --dequantize's float model in the chosen dtype —
 * and the same requantisation record and lost zeros; an act-order slice without a GPTQ layout is refused
 * before anything is written, as in memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { addLora, adapterBaseRecord, loadAdapter, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import { enableQuantAware, enableSparsePeft } from '../../src/adapters/sqft.ts';
import { quantizeModel } from '../../src/compress/quantize.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import type { WeightDType } from '../../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../../src/models/llama/weights.ts';
import { resolveSearchSpace } from '../../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../../src/nas/search-space.ts';
import { sampleSubnet } from '../../src/nas/subnet.ts';
import { streamExtract } from '../../src/nas/extract-stream.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { countMacs, countParams } from '../../src/nas/cost.ts';
import { assertSameModel, inMemory, tensors } from '../helpers/stream-fixture.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const SETTINGS = { rank: 4, alpha: 8, dropout: 0, targets: [...PROJECTIONS] };
const SPACE: SearchSpaceSpec = {
  groups: [
    { kind: 'rank', modules: ['q_proj', 'k_proj', 'v_proj'], share: 'layer', fractions: [1, 0.5] },
    { kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] },
    { kind: 'heads', share: 'layer', fractions: [1, 0.5] },
  ],
};

/** A random GPTQ base (group 8, every projection, `lmHead`: the head too; floats stored in `dtype`, small shards) and an elastic adapter on it. */
function gptqFixture(o: { actOrder: boolean; lmHead: boolean; qa: boolean; dtype: WeightDType }) {
  const root = mkdtempSync(join(tmpdir(), 'lonas-stream-gptq-'));
  const base = join(root, 'base'),
    adapter = join(root, 'adapter');
  const m = tinyModel(3, tinyConfig({ numLayers: 2, tieWordEmbeddings: false }));
  const rng = new T.Rng(2);
  const samples = Array.from({ length: 4 }, () => Int32Array.from({ length: 12 }, () => rng.int(40)));
  quantizeModel(m, samples, {
    bits: 4,
    groupSize: 8,
    actOrder: o.actOrder,
    percDamp: 0.01,
    blockSize: 128,
    targets: [...PROJECTIONS],
    lmHead: o.lmHead,
  });
  saveModelDir(base, m, { dtype: o.dtype, shardBytes: 4096 });
  const loaded = loadLlama(base, { weights: 'f32' });
  addLora(loaded, SETTINGS, 1);
  // large enough to move codes of a plain LoRA merge
  for (const l of loraModules(loaded)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.3));
  if (o.qa) {
    enableSparsePeft(loraModules(loaded));
    enableQuantAware(loraModules(loaded));
  }
  saveAdapter(adapter, loaded, SETTINGS, { searchSpace: SPACE, mode: o.qa ? 'qa' : 'lora', base: adapterBaseRecord(base) });
  const space = resolveSearchSpace(SPACE, loaded.config, SETTINGS.rank, SETTINGS.targets);
  const random = join(root, 'random.json');
  writeFileSync(random, JSON.stringify(sampleSubnet(space, new T.Rng(11))));
  return { root, base, adapter, subnets: ['maximal', 'minimal', random] };
}

for (const c of [
  { name: 'plain LoRA, GPTQ head, F32 floats', qa: false, lmHead: true, dtype: 'F32' as const },
  { name: 'QA-SparsePEFT, BF16 floats', qa: true, lmHead: false, dtype: 'BF16' as const },
]) {
  test(`streamed merge and extraction onto a GPTQ base equal the in-memory path bit for bit (${c.name})`, () => {
    const fx = gptqFixture({ actOrder: false, ...c });
    try {
      let requantised = 0;
      for (const subnet of fx.subnets)
        for (const merge of [true, false])
          for (const dequantize of [false, true]) {
            if (c.qa && !merge && dequantize) continue; // refused (test/nas/extract.test.ts)
            const what = `${subnet} ${merge ? 'merged' : 'unmerged'}${dequantize ? ' --dequantize' : ''}`;
            const want = join(fx.root, 'want'),
              got = join(fx.root, 'got');
            const w = inMemory(fx.base, fx.adapter, subnet, want, merge, c.dtype, dequantize);
            const r = streamExtract(fx.base, fx.adapter, subnet, got, { merge, dequantize, shardBytes: 4096 });
            assert.equal(r.dtype, c.dtype, `${what}: the base's float dtype by default`);
            assertSameModel(got, want, what);
            const written = tensors(got);
            assert.equal(written.has('model.layers.0.self_attn.q_proj.qweight'), !dequantize, `${what}: INT4 unless --dequantize`);
            assert.deepEqual(r.requantization, w.requantization, `${what}: the requantisation record`);
            assert.deepEqual(r.zerosLost, w.zerosLost, `${what}: zeros lost`);
            assert.equal(r.dequantized, dequantize);
            if (r.requantization?.codesChanged) requantised++;
            // the counts taken on the way (a GPTQ head's zeros included) are those of the written model as reloaded
            const small = loadLlama(got);
            if (!merge) loadAdapter(small, join(got, 'adapter'));
            assert.deepEqual(r.extracted.params, countParams(small), `${what}: parameters`);
            assert.equal(r.extracted.macs, countMacs(small, 256), `${what}: MACs`);
            const { supernet } = loadWithAdapter(fx.base, fx.adapter, subnet);
            assert.deepEqual(
              r.subnetCost,
              supernet!.cost(supernet!.config, { merged: false, seqLen: 256 }),
              `${what}: the sub-network's cost`,
            );
            rmSync(want, { recursive: true });
            rmSync(got, { recursive: true });
          }
      assert.ok(requantised > 0, 'some merge moved codes (the comparison covers requantised codes)');
    } finally {
      rmSync(fx.root, { recursive: true, force: true });
    }
  });
}

test('an act-order GPTQ slice without a GPTQ layout is refused before anything is written; --dequantize streams it in float as in memory', () => {
  const fx = gptqFixture({ actOrder: true, lmHead: false, qa: false, dtype: 'F32' });
  try {
    const got = join(fx.root, 'got'),
      want = join(fx.root, 'want');
    assert.throws(() => inMemory(fx.base, fx.adapter, 'minimal', want, true, 'F32'), /act-order GPTQ weight .* pass --dequantize/);
    assert.throws(() => streamExtract(fx.base, fx.adapter, 'minimal', got, { merge: true }), /act-order GPTQ weight .* pass --dequantize/);
    assert.ok(!existsSync(got));
    inMemory(fx.base, fx.adapter, 'minimal', want, true, 'F32', true);
    streamExtract(fx.base, fx.adapter, 'minimal', got, { merge: true, dequantize: true });
    assertSameModel(got, want, 'minimal --dequantize');
  } finally {
    rmSync(fx.root, { recursive: true, force: true });
  }
});
