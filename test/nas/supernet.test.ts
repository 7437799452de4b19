/**
 * The SuperNet object: `with` runs code at another configuration and always restores the active one (after a
 * return, a throw, a resolved or a rejected promise); `extract` and `cost` equal the functions they wrap at
 * that configuration; `baseCost` counts the base model without its adapters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { addLora, loraModules } from '../../src/adapters/peft.ts';
import { PRESETS, resolveSearchSpace } from '../../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../../src/nas/search-space.ts';
import { applySubnet, namedSubnet } from '../../src/nas/subnet.ts';
import { extractMerged } from '../../src/nas/extract.ts';
import { countMacs, countParams } from '../../src/nas/cost.ts';
import { SuperNet } from '../../src/nas/supernet.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const ids = Int32Array.from([1, 5, 9, 3, 22, 17, 8, 2, 30, 11, 4, 6]);
const logits = (m: LlamaModel) => T.noGrad(() => m.forward(ids, 2, 6)).toArray();
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

function build(): SuperNet {
  const m = tinyModel(5);
  addLora(m, { rank: 4, alpha: 8, dropout: 0, targets: [...TARGETS] }, 1);
  const rng = new T.Rng(8);
  for (const l of loraModules(m)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
  const widths: SearchSpaceSpec['groups'] = [
    { kind: 'mlp_width', share: 'layer', fractions: [1, 0.5] },
    { kind: 'heads', share: 'layer', fractions: [1, 0.5] },
  ];
  const space = resolveSearchSpace({ groups: [...PRESETS.nls.groups, ...widths] }, m.config, 4);
  return new SuperNet(m, space, namedSubnet(space, 'heuristic'));
}

test('with() restores the active configuration after a return, a throw and a settled promise', async () => {
  const net = build();
  const active = logits(net.model);
  const minimal = namedSubnet(net.space, 'minimal');
  const inside = net.with(minimal, () => logits(net.model));
  assert.notDeepEqual(inside, active, 'the minimal sub-network computes something else');
  assert.deepEqual(logits(net.model), active, 'restored after a return');
  assert.throws(
    () =>
      net.with(minimal, () => {
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.deepEqual(logits(net.model), active, 'restored after a throw');
  assert.deepEqual(await net.with(minimal, async () => logits(net.model)), inside);
  assert.deepEqual(logits(net.model), active, 'restored after the promise resolved');
  await assert.rejects(
    net.with(minimal, async () => {
      throw new Error('late');
    }),
    /late/,
  );
  assert.deepEqual(logits(net.model), active, 'restored after the promise rejected');
  assert.deepEqual(net.config, namedSubnet(net.space, 'heuristic'));
});

test('extract() and cost() equal extractMerged / countParams / countMacs at that configuration', () => {
  const net = build();
  const minimal = namedSubnet(net.space, 'minimal');
  const small = net.extract(minimal);
  const unmerged = { merged: false, seqLen: 64 };
  const cost = net.cost(minimal, unmerged);
  applySubnet(net.model, net.space, minimal);
  assert.deepEqual(logits(small), logits(extractMerged(net.model)));
  assert.deepEqual(cost, { params: countParams(net.model), macs: countMacs(net.model, 64) });
  assert.ok(cost.macs < net.cost(namedSubnet(net.space, 'maximal'), unmerged).macs, 'the minimal sub-network costs less');
  // merged: the cost of the model extract --merge writes (no adapter parameters or MACs)
  const merged = net.cost(minimal, { merged: true, seqLen: 64 });
  assert.deepEqual(merged, { params: countParams(small), macs: countMacs(small, 64) });
});

test('merged cost does not reward adapter ranks: configurations differing only in rank cost the same merged, not unmerged', () => {
  const net = build();
  const maximal = namedSubnet(net.space, 'maximal');
  const rankGroups = net.space.groups.filter((g) => g.kind === 'rank');
  assert.ok(rankGroups.length > 0, 'the test space has rank groups');
  const lowRank = { ...maximal, ...Object.fromEntries(rankGroups.map((g) => [g.id, Math.min(...g.choices)])) };
  const d = (merged: boolean) => ({ merged, seqLen: 32 });
  assert.ok(net.cost(lowRank, d(false)).macs < net.cost(maximal, d(false)).macs, 'unmerged: a lower rank costs less');
  assert.deepEqual(net.cost(lowRank, d(true)), net.cost(maximal, d(true)), 'merged: the ranks vanish in the merge');
});

test('baseCost() counts the base model alone (no adapter, full widths) and leaves the active configuration in place', () => {
  const net = build();
  const active = logits(net.model);
  const base = tinyModel(5);
  assert.deepEqual(net.baseCost(256), { params: countParams(base), macs: countMacs(base, 256) });
  assert.deepEqual(logits(net.model), active);
  assert.ok(
    net.loras.every((l) => l.activeRank > 0),
    'the adapters are back on',
  );
});
