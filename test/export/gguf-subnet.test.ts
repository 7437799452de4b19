/**
 * An extracted heterogeneous LoNAS sub-network (per-layer MLP widths and per-layer attention heads) exported
 * through `lonas export --adapter --subnet` loads in llama.cpp (as its per-layer `deci` architecture) and
 * computes what lonas computes on the same sub-network: greedy tokens equal, prompt log-probs within 1e-4.
 * The adapter is random (seeded, B ≠ 0) so the merge changes every projection.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addLora, loraModules, saveAdapter } from '../../src/adapters/peft.ts';
import type { LoraSettings } from '../../src/adapters/peft.ts';
import { resolveSearchSpace } from '../../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../../src/nas/search-space.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import { activeConfig } from '../../src/nas/extract.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { generate } from '../../src/models/llama/generate.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { Rng } from '../../src/tensor/index.ts';
import { STORIES_F32 } from '../helpers/assets.ts';
import { lonas } from '../helpers/cli.ts';
import { openGguf } from '../engines/llama-cpp/engine.ts';
import { lonasLogProbs, maxAbsDiff } from './gguf-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-gguf-subnet-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SPACE: SearchSpaceSpec = {
  groups: [
    { kind: 'rank', modules: ['q_proj', 'k_proj', 'v_proj'], share: 'layer', fractions: [1, 0.5] },
    { kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] },
    { kind: 'heads', share: 'layer', fractions: [1, 0.5] },
  ],
} as SearchSpaceSpec;

/** stories260K + a random elastic adapter saved to `dir/adapter`, and a sub-network whose layers all differ from their neighbours. */
function buildSubnet(): { adapter: string; subnet: string; widthsOnly: string } {
  const base = loadLlama(STORIES_F32());
  const settings: LoraSettings = {
    rank: 4,
    alpha: 8,
    dropout: 0,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  };
  addLora(base, settings, 3);
  const rng = new Rng(11);
  for (const l of loraModules(base)) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.05));
  const adapter = join(dir, 'adapter');
  saveAdapter(adapter, base, settings, { searchSpace: SPACE });
  const space = resolveSearchSpace(SPACE, base.config, settings.rank, settings.targets);
  // layer l takes choice (l + offset) mod n of each group: widths and head counts change from layer to layer
  const config = Object.fromEntries(
    space.groups.map((g) => {
      const l = g.layers[0],
        offset = g.kind === 'heads' ? 1 : 0;
      return [g.id, g.choices[(l + offset) % g.choices.length]];
    }),
  );
  const subnet = join(dir, 'subnet.json'),
    widthsOnly = join(dir, 'widths-only.json');
  writeFileSync(subnet, JSON.stringify(config));
  writeFileSync(
    widthsOnly,
    JSON.stringify(Object.fromEntries(space.groups.map((g) => [g.id, g.kind === 'heads' ? g.choices[0] : config[g.id]]))),
  );
  return { adapter, subnet, widthsOnly };
}

test('a heterogeneous sub-network (per-layer MLP widths and heads) runs in llama.cpp as in lonas', async () => {
  const { adapter, subnet } = buildSubnet();
  const out = join(dir, 'subnet.gguf');
  const report = lonas(
    'export',
    '--model',
    STORIES_F32(),
    '--adapter',
    adapter,
    '--subnet',
    subnet,
    '--format',
    'gguf',
    '--type',
    'f32',
    '--out',
    out,
  );
  assert.match(report, /architecture\s+deci \(per-layer/);
  const { model } = loadWithAdapter(STORIES_F32(), adapter, subnet);
  const layers = activeConfig(model).layers;
  assert.ok(
    new Set(layers.map((l) => l.intermediateSize)).size > 1 && new Set(layers.map((l) => l.numHeads)).size > 1,
    'the sub-network is heterogeneous in both MLP width and heads',
  );
  const s = await openGguf(out);
  try {
    const md = s.model.fileInfo.metadata as unknown as Record<string, Record<string, unknown>>;
    assert.equal(md.general.architecture, 'deci');
    const deci = md.deci as { feed_forward_length: number[]; attention: { head_count: number[]; head_count_kv: number[] } };
    assert.deepEqual(
      [...deci.feed_forward_length],
      layers.map((l) => l.intermediateSize),
    );
    assert.deepEqual(
      [...deci.attention.head_count],
      layers.map((l) => l.numHeads),
    );
    assert.deepEqual(
      [...deci.attention.head_count_kv],
      layers.map((l) => l.numKvHeads),
    );
    const tokenizer = loadTokenizer(STORIES_F32());
    const prompt = [tokenizer.bosId!, ...tokenizer.encode('The little bird sang a song for', { addBos: false })];
    const ours = generate(model, [prompt], { maxNewTokens: 64, strategy: { kind: 'greedy' }, eosIds: [] })[0];
    assert.deepEqual(await s.greedy(prompt, 64), ours, 'greedy continuation of the sub-network, token for token');
    const diff = maxAbsDiff(await s.logProbs(prompt), lonasLogProbs(model, prompt));
    assert.ok(diff < 1e-4, `prompt log-probabilities differ by ${diff} (limit 1e-4)`);
  } finally {
    await s.dispose();
  }
});

test('only the sizes that differ between layers are written as arrays', async () => {
  const { adapter, widthsOnly } = buildSubnet();
  const out = join(dir, 'widths.gguf');
  lonas('export', '--model', STORIES_F32(), '--adapter', adapter, '--subnet', widthsOnly, '--format', 'gguf', '--out', out);
  const { model } = loadWithAdapter(STORIES_F32(), adapter, widthsOnly);
  const s = await openGguf(out);
  try {
    const deci = (
      s.model.fileInfo.metadata as unknown as {
        deci: { feed_forward_length: unknown; attention: { head_count: unknown; head_count_kv: unknown } };
      }
    ).deci;
    assert.deepEqual(
      [...(deci.feed_forward_length as number[])],
      activeConfig(model).layers.map((l) => l.intermediateSize),
    );
    assert.equal(deci.attention.head_count, 8);
    assert.equal(deci.attention.head_count_kv, 4);
    const prompt = [1, 403, 407, 261, 378];
    assert.ok(maxAbsDiff(await s.logProbs(prompt), lonasLogProbs(model, prompt)) < 1e-4);
  } finally {
    await s.dispose();
  }
});

test('per-layer sizes are refused for Qwen2, whose llama.cpp graph builds every layer at one size', () => {
  const q = join(dir, 'qwen2');
  mkdirSync(q);
  const layer = (ff: number) => ({ intermediate_size: ff, num_attention_heads: 8, num_key_value_heads: 4 });
  writeFileSync(
    join(q, 'config.json'),
    JSON.stringify({
      model_type: 'qwen2',
      architectures: ['Qwen2ForCausalLM'],
      vocab_size: 512,
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      lonas_layers: [layer(172), layer(128)],
    }),
  );
  assert.throws(
    () => exportGguf(q, join(dir, 'q.gguf'), 'f32'),
    /config\.json: lonas_layers gives Qwen2 layers different sizes.*"share": "all"/,
  );
  assert.ok(!existsSync(join(dir, 'q.gguf')), 'nothing written');
});
