/** A random sharded base in a chosen dtype with an elastic adapter on it (streamed merge / extraction tests). */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.ts';
import { addLora, adapterBaseRecord, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { enableSparsePeft } from '../../src/adapters/sqft.ts';
import { permuteMlpChannels } from '../../src/adapters/channel-order.ts';
import { loadLlama, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import type { WeightDType } from '../../src/models/llama/checkpoint.ts';
import { openWeights } from '../../src/io/hf-dir.ts';
import { resolveSearchSpace } from '../../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../../src/nas/search-space.ts';
import { sampleSubnet } from '../../src/nas/subnet.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { extractToDir } from '../../src/nas/extract.ts';
import { tinyConfig, tinyModel } from './tiny-model.ts';

const tmp = (what: string) => mkdtempSync(join(tmpdir(), `lonas-stream-${what}-`));

const ALL: LoraSettings = {
  rank: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};
const SPACE: SearchSpaceSpec = {
  groups: [
    { kind: 'rank', modules: ['q_proj', 'k_proj', 'v_proj'], share: 'layer', fractions: [1, 0.5] },
    { kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] },
    { kind: 'heads', share: 'layer', fractions: [1, 0.5] },
  ],
};

export interface Case {
  name: string;
  sparse: boolean;
  reorder: boolean;
  bias: boolean;
  tied: boolean;
}
export const CASES: Case[] = [
  { name: 'SparsePEFT, reordered MLP channels', sparse: true, reorder: true, bias: false, tied: false },
  { name: 'plain LoRA, q/k/v biases, tied head', sparse: false, reorder: false, bias: true, tied: true },
];

/** A random base saved in `dtype` (sharded: small shards) and an elastic adapter trained on it (random A and B). */
export function fixture(c: Case, dtype: WeightDType = 'BF16') {
  const root = tmp('fixture');
  const base = join(root, 'base'),
    adapter = join(root, 'adapter');
  const m = tinyModel(7, tinyConfig({ numLayers: 3, attentionBias: c.bias, tieWordEmbeddings: c.tied }));
  if (c.sparse)
    for (const [name, t] of m.namedParameters()) if (name.includes('_proj.weight')) for (let i = 0; i < t.size; i += 3) t.data[i] = 0; // a third of every projection zero
  saveModelDir(base, m, { dtype, shardBytes: 4096 });
  const loaded = loadLlama(base, { weights: 'f32' });
  addLora(loaded, ALL, 2);
  const rng = new T.Rng(5);
  for (const l of loraModules(loaded)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
  if (c.sparse) enableSparsePeft(loraModules(loaded));
  if (c.reorder)
    permuteMlpChannels(
      loaded,
      loaded.config.layers.map((s) => rng.shuffle(Array.from({ length: s.intermediateSize }, (_, j) => j))),
    );
  saveAdapter(adapter, loaded, ALL, { searchSpace: SPACE, mode: c.sparse ? 'sparse' : 'lora', base: adapterBaseRecord(base) });
  const space = resolveSearchSpace(SPACE, loaded.config, ALL.rank, ALL.targets);
  const random = join(root, 'random.json');
  writeFileSync(random, JSON.stringify(sampleSubnet(space, new T.Rng(11))));
  return { root, base, adapter, subnets: ['maximal', 'minimal', random] };
}

/** name → { dtype, shape, bytes } of every tensor of a model directory. */
export function tensors(dir: string): Map<string, { dtype: string; shape: number[]; bytes: Buffer }> {
  const { files, where } = openWeights(dir);
  try {
    return new Map(
      [...where].map(([name, f]) => {
        const e = f.entry(name);
        return [name, { dtype: e.dtype, shape: e.shape, bytes: Buffer.from(f.readRaw(name)) }];
      }),
    );
  } finally {
    for (const f of files) f.close();
  }
}

/** Asserts that two model directories hold the same config.json and the same tensors, byte for byte. */
export function assertSameModel(got: string, want: string, what: string): void {
  assert.equal(readFileSync(join(got, 'config.json'), 'utf8'), readFileSync(join(want, 'config.json'), 'utf8'), `${what}: config.json`);
  const a = tensors(got),
    b = tensors(want);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: tensor names`);
  for (const [name, t] of b) {
    const g = a.get(name)!;
    assert.equal(g.dtype, t.dtype, `${what}: ${name} dtype`);
    assert.deepEqual(g.shape, t.shape, `${what}: ${name} shape`);
    assert.ok(g.bytes.equals(t.bytes), `${what}: ${name} differs`);
  }
}

/** The in-memory path: the whole super-network loaded, extracted, saved (what requantising changed returned). */
export function inMemory(
  base: string,
  adapter: string,
  subnet: string,
  out: string,
  merge: boolean,
  dtype: WeightDType,
  dequantize = false,
): ReturnType<typeof extractToDir> {
  const { model } = loadWithAdapter(base, adapter, subnet);
  const hfConfig = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
  return extractToDir(model, out, { merge, sourceDir: base, hfConfig, dtype, dequantize });
}
