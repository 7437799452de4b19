/**
 * Counting parameters reads shapes and the stored values, never widens: a BF16 base stays bf16 through
 * countParams and the search's setup (SuperNet + cost and the latency objective's in-memory extraction at every
 * named sub-network), and the counts (total and non-zero, ±0 in bf16 included) and the extracted model's logits
 * equal those of the float32 upcast.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneModel } from '../../src/compress/prune.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import type { LlamaModel, ProjectionName } from '../../src/models/llama/model.ts';
import type { Linear } from '../../src/nn/modules.ts';
import { addLora } from '../../src/adapters/peft.ts';
import { countParams } from '../../src/nas/cost.ts';
import { NAMED_SUBNETS, namedSubnet } from '../../src/nas/subnet.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import { SuperNet } from '../../src/nas/supernet.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const root = mkdtempSync(join(tmpdir(), 'lonas-cost-bf16-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'm');
const pruned = tinyModel(11, tinyConfig());
pruneModel(pruned, [], { method: 'magnitude', sparsity: 0.5, targets: ['q_proj', 'up_proj'] });
saveModelDir(dir, pruned, { dtype: 'BF16' });

/** The bf16 model with −0 in a few weights (bits 0x8000: a zero a float comparison sees, a bits test must too). */
function bf16Model(): LlamaModel {
  const m = loadLlama(dir);
  const bits = (m.layers[1].proj.k_proj as Linear).weightStore.bf16!.bits;
  for (let k = 0; k < bits.length; k += 5) bits[k] = 0x8000;
  return m;
}

function upcast(m: LlamaModel): LlamaModel {
  const f = loadLlama(dir, { weights: 'f32' });
  const w = (f.layers[1].proj.k_proj as Linear).weight.data;
  const bits = (m.layers[1].proj.k_proj as Linear).weightStore.bf16!.bits;
  for (let k = 0; k < bits.length; k++) if (bits[k] === 0x8000) w[k] = -0;
  return f;
}

test('countParams counts a bf16 model without widening it, and counts what its float32 upcast counts', () => {
  const m = bf16Model(),
    f = upcast(m);
  const got = countParams(m);
  assert.equal(m.weightStorage().f32, 0, 'countParams widened a bf16 weight');
  assert.deepEqual(got, countParams(f));
  assert.ok(got.nonZero < got.total, 'the pruned and −0 weights are counted as zeros');
});

test('the search setup (SuperNet, cost and in-memory extraction of every named sub-network) keeps a bf16 base in bfloat16', () => {
  const targets: ProjectionName[] = ['q_proj', 'v_proj', 'up_proj']; // k, o, gate and down are sliced without an adapter
  const m0 = bf16Model();
  const [bf, fl] = [m0, upcast(m0)].map((m) => {
    const loras = addLora(m, { rank: 4, alpha: 8, dropout: 0, targets }, 3);
    const rng = new Rng(9);
    for (const l of loras) l.loraB.data.forEach((_, k, a) => (a[k] = rng.normal() * 0.1));
    const space = resolveSearchSpace(PRESETS.lonas, m.config, 4, targets);
    return new SuperNet(m, space, namedSubnet(space, 'maximal'));
  });
  const ids = Int32Array.from([3, 9, 1, 30, 7, 22]);
  const logits = (m: LlamaModel) => noGrad(() => m.forward(ids, 1, ids.length)).toArray();
  for (const name of NAMED_SUBNETS) {
    const cfg = namedSubnet(bf.space, name);
    for (const merged of [false, true])
      assert.deepEqual(bf.cost(cfg, { merged, seqLen: 32 }), fl.cost(cfg, { merged, seqLen: 32 }), `${name}, merged ${merged}`);
    // the latency objective's shipped model: adapted projections merged (float32), the rest sliced bf16
    const small = bf.extract(cfg);
    assert.equal(small.weightStorage().bf16, 2 + 4 * small.config.layers.length, `${name}: embedding, head and k, o, gate, down stay bf16`);
    assert.deepEqual(logits(small), logits(fl.extract(cfg)), `${name}: the extracted model computes what the float32 one does`);
  }
  assert.deepEqual(bf.baseCost(32), fl.baseCost(32));
  assert.equal(bf.model.weightStorage().f32, 0, 'the search setup widened a bf16 weight');
});
