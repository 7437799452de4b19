/**
 * Layer-wise streamed compression (compress/stream.ts) against the in-memory path (load everything,
 * pruneModel / quantizeModel, saveModelDir): the written directories are equal byte for byte (config.json,
 * index, every shard: Wanda masks, GPTQ codes, scales, zeros, g_idx), with several input and output shards,
 * while the streamed run holds one decoded decoder layer at a time (the reader's live-layer count). The
 * output dtype defaults to the base's storage dtype, norms and embedding included, and can be chosen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir, modelFromLoaded, saveModelDir } from '../../src/models/llama/checkpoint.ts';
import type { WeightDType } from '../../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import { pruneModel } from '../../src/compress/prune.ts';
import type { PruneOptions } from '../../src/compress/prune.ts';
import { quantizeModel } from '../../src/compress/quantize.ts';
import type { QuantizeOptions } from '../../src/compress/quantize.ts';
import type { LayerStream } from '../../src/compress/calibrate.ts';
import { compressStreamed } from '../../src/compress/stream.ts';
import type { StreamOptions } from '../../src/compress/stream.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { Rng } from '../../src/tensor/index.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const SHARD = 6000; // bytes: several shards in and out
const LAYERS = 6;
const rng = new Rng(3);
const samples = Array.from({ length: 5 }, () => Int32Array.from({ length: 10 }, () => rng.int(40)));

function withRoot(fn: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'lonas-stream-'));
  try {
    fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** A random tiny model saved as `dtype` in shards; `prune` zeroes half of each projection first (a sparse base). */
function base(root: string, dtype: WeightDType, o: { tied?: boolean; prune?: boolean } = {}): string {
  const m = tinyModel(9, tinyConfig({ numLayers: LAYERS, tieWordEmbeddings: !!o.tied }));
  if (o.prune) pruneModel(m, [], { method: 'magnitude', sparsity: 0.5, targets: [...PROJECTIONS] });
  const dir = join(root, 'base');
  saveModelDir(dir, m, { dtype, shardBytes: SHARD });
  return dir;
}

/** The in-memory reference: everything loaded in float32, compressed, saved in `dtype`. */
function inMemory(src: string, out: string, dtype: WeightDType, run: (m: LlamaModel) => void): void {
  const loaded = loadModelDir(src);
  const model = modelFromLoaded(src, loaded);
  run(model);
  saveModelDir(out, model, { hfConfig: loaded.hfConfig, dtype, shardBytes: SHARD, overwrite: true });
}

function assertSameDir(a: string, b: string): void {
  const files = readdirSync(a).sort();
  assert.deepEqual(readdirSync(b).sort(), files);
  assert.ok(files.filter((f) => f.endsWith('.safetensors')).length > 2, `several output shards: ${files.join(', ')}`);
  for (const f of files) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
}

function streamed(src: string, out: string, o: StreamOptions, run: (m: LlamaModel, s: LayerStream) => void): WeightDType {
  let live = 0;
  const r = compressStreamed(src, out, { shardBytes: SHARD, ...o }, (m, s) => {
    // every layer the compression touches must be the one streamed in
    run(m, {
      enter: (i) => {
        s.enter(i);
        live = m.layers.filter(Boolean).length;
        assert.equal(live, 1, `layer ${i}: ${live} decoder layers in memory`);
      },
      leave: (i) => s.leave(i),
    });
  });
  assert.equal(r.maxLiveLayers, 1, 'one decoded decoder layer at a time');
  return r.dtype;
}

const PRUNES: [string, Omit<PruneOptions, 'targets'>][] = [
  ['wanda 50%', { method: 'wanda', sparsity: 0.5 }],
  ['wanda 2:4', { method: 'wanda', sparsity: 0.5, nm: { n: 2, m: 4 } }],
  ['magnitude 60%', { method: 'magnitude', sparsity: 0.6 }],
];
for (const [name, p] of PRUNES)
  test(`sparsify ${name}: streamed layer by layer equals the in-memory path byte for byte (BF16 base)`, () =>
    withRoot((root) => {
      const src = base(root, 'BF16');
      const o = { ...p, targets: [...PROJECTIONS] };
      const wanted = p.method === 'wanda' ? samples : [];
      inMemory(src, join(root, 'mem'), 'BF16', (m) => pruneModel(m, wanted, o));
      const dtype = streamed(src, join(root, 'stream'), {}, (m, stream) => pruneModel(m, wanted, { ...o, stream }));
      assert.equal(dtype, 'BF16', 'the base dtype by default');
      assertSameDir(join(root, 'mem'), join(root, 'stream'));
    }));

const Q: QuantizeOptions = { bits: 4, groupSize: 8, actOrder: false, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] };
for (const [name, q, b] of [
  ['4-bit', Q, {}],
  ['3-bit act-order, group -1', { ...Q, bits: 3, groupSize: -1, actOrder: true }, {}],
  ['4-bit on a sparse base (zeros kept)', Q, { prune: true }],
  ['4-bit --lm-head, tied head', { ...Q, lmHead: true }, { tied: true }],
] as const)
  test(`quantize ${name}: streamed layer by layer equals the in-memory path byte for byte`, () =>
    withRoot((root) => {
      const src = base(root, 'F32', b);
      inMemory(src, join(root, 'mem'), 'F32', (m) => quantizeModel(m, samples, q));
      const gptq = { bits: q.bits, groupSize: q.groupSize, targets: q.targets, lmHead: !!('lmHead' in q && q.lmHead) };
      streamed(src, join(root, 'stream'), { gptq }, (m, stream) => quantizeModel(m, samples, { ...q, stream }));
      assertSameDir(join(root, 'mem'), join(root, 'stream'));
    }));

/** dtype of every tensor in a model directory, by name. */
function dtypes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
    const st = new SafetensorsFile(join(dir, f));
    for (const [n, e] of st.entries) out.set(n, e.dtype);
    st.close();
  }
  return out;
}

test('output dtype: the base storage by default (embedding and norms included), else as asked; GPTQ scales stay F16', () =>
  withRoot((root) => {
    const src = base(root, 'BF16');
    const torch = (d: string) => JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')).torch_dtype;
    const mag = (m: LlamaModel, stream: LayerStream) =>
      pruneModel(m, [], { method: 'magnitude', sparsity: 0.5, targets: [...PROJECTIONS], stream });
    streamed(src, join(root, 'default'), {}, mag);
    assert.deepEqual(new Set(dtypes(join(root, 'default')).values()), new Set(['BF16']));
    assert.equal(torch(join(root, 'default')), 'bfloat16');
    for (const [d, torchName] of [
      ['F32', 'float32'],
      ['F16', 'float16'],
    ] as const) {
      const out = join(root, d);
      assert.equal(streamed(src, out, { dtype: d }, mag), d);
      assert.deepEqual(new Set(dtypes(out).values()), new Set([d]));
      assert.equal(torch(out), torchName);
    }
    const gptq = { bits: 4, groupSize: 8, targets: [...PROJECTIONS], lmHead: false };
    streamed(src, join(root, 'q'), { gptq }, (m, stream) => quantizeModel(m, samples, { ...Q, stream }));
    const q = dtypes(join(root, 'q'));
    assert.equal(q.get('model.layers.0.mlp.up_proj.scales'), 'F16');
    assert.equal(q.get('model.layers.0.mlp.up_proj.qweight'), 'I32');
    assert.equal(q.get('model.norm.weight'), 'BF16');
    assert.equal(q.get('model.embed_tokens.weight'), 'BF16');
    assert.equal(q.get('lm_head.weight'), 'BF16');
  }));

test('a failing streamed compression leaves no output directory and no temporary files', () =>
  withRoot((root) => {
    const src = base(root, 'F32');
    assert.throws(
      () =>
        compressStreamed(src, join(root, 'out'), { shardBytes: SHARD }, (m, stream) =>
          pruneModel(m, [], {
            method: 'magnitude',
            sparsity: 0.5,
            targets: [...PROJECTIONS],
            stream,
            onProgress: (l) => {
              if (l === 3) throw new Error('interrupted');
            },
          }),
        ),
      /interrupted/,
    );
    assert.deepEqual(readdirSync(root), ['base']);
  }));
