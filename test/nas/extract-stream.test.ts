/**
 * Layer-streamed merge and extraction (src/nas/extract-stream.ts) against the in-memory path
 * (loadWithAdapter + extractToDir): the same files bit for bit — merged weights, sliced sub-networks,
 * sliced adapters — for BF16 bases with SparsePEFT masks, MLP channel orders, q/k/v biases and tied heads;
 * the output dtype is the base's unless asked; the counts taken on the way equal those of the written model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAdapter } from '../../src/adapters/peft.ts';
import { loadLlama } from '../../src/models/llama/checkpoint.ts';
import { INDEX_FILE } from '../../src/io/hf-dir.ts';
import { f32ToF16 } from '../../src/io/safetensors.ts';
import { loadWithAdapter } from '../../src/nas/load.ts';
import { streamExtract } from '../../src/nas/extract-stream.ts';
import { countMacs, countParams } from '../../src/nas/cost.ts';
import { CASES, assertSameModel, fixture, inMemory, tensors } from '../helpers/stream-fixture.ts';

for (const c of CASES) {
  for (const merge of [true, false]) {
    test(`streamed ${merge ? 'merge' : 'extraction (sliced base + adapter)'} equals the in-memory path bit for bit (${c.name})`, () => {
      const fx = fixture(c);
      try {
        for (const subnet of fx.subnets) {
          const want = join(fx.root, 'want'),
            got = join(fx.root, 'got');
          inMemory(fx.base, fx.adapter, subnet, want, merge, 'BF16');
          const r = streamExtract(fx.base, fx.adapter, subnet, got, { merge, shardBytes: 4096 });
          assert.equal(r.dtype, 'BF16', 'a BF16 base is written as BF16 by default');
          assertSameModel(got, want, `${subnet}`);
          assert.ok(existsSync(join(got, INDEX_FILE)), 'sharded with an index');
          assert.equal(existsSync(join(got, 'adapter')), !merge);
          if (!merge) {
            for (const f of ['adapter_model.safetensors', 'README.md'])
              assert.ok(readFileSync(join(got, 'adapter', f)).equals(readFileSync(join(want, 'adapter', f))), `${subnet}: adapter/${f}`);
            // both name the model they were written beside
            const json = (d: string, f: string) => JSON.parse(readFileSync(join(d, 'adapter', f), 'utf8'));
            const peft = (d: string) => ({ ...json(d, 'adapter_config.json'), base_model_name_or_path: null });
            assert.deepEqual(peft(got), peft(want), `${subnet}: adapter_config.json`);
            assert.equal(json(got, 'adapter_config.json').base_model_name_or_path, got);
            const record = (d: string) => ({
              ...json(d, 'lonas_adapter.json'),
              base: { ...json(d, 'lonas_adapter.json').base, model: null },
            });
            assert.deepEqual(record(got), record(want), `${subnet}: lonas_adapter.json`);
            assert.equal(json(got, 'lonas_adapter.json').base.model, got, 'the sliced adapter records the written model as its base');
          }
          // the counts taken on the way are those of the model as written and reloaded
          const small = loadLlama(got);
          if (!merge) loadAdapter(small, join(got, 'adapter'));
          assert.deepEqual(r.extracted.params, countParams(small), `${subnet}: parameters`);
          assert.equal(r.extracted.macs, countMacs(small, 256), `${subnet}: MACs`);
          const { supernet } = loadWithAdapter(fx.base, fx.adapter, subnet);
          const base = supernet!.baseCost(256),
            sub = supernet!.cost(supernet!.config, { merged: false, seqLen: 256 });
          assert.deepEqual(r.base, { params: base.params.total, macs: base.macs });
          assert.deepEqual(r.subnetCost, sub);
          rmSync(want, { recursive: true });
          rmSync(got, { recursive: true });
        }
      } finally {
        rmSync(fx.root, { recursive: true, force: true });
      }
    });
  }
}

test('a BF16 base stays BF16 (embedding and norms bit for bit); --dtype F32 and F16 write what the float32 merge rounds to', () => {
  const fx = fixture(CASES[0]);
  try {
    const out = (d: string) => join(fx.root, d);
    streamExtract(fx.base, fx.adapter, 'maximal', out('bf16'), { merge: true });
    const base = tensors(fx.base),
      bf16 = tensors(out('bf16'));
    for (const [name, t] of bf16) {
      assert.equal(t.dtype, 'BF16', name);
      if (!name.includes('_proj.')) assert.ok(t.bytes.equals(base.get(name)!.bytes), `${name} is copied bit for bit`);
    }
    assert.equal(JSON.parse(readFileSync(join(out('bf16'), 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
    const merged = base.get('model.layers.0.mlp.up_proj.weight')!;
    assert.ok(!bf16.get('model.layers.0.mlp.up_proj.weight')!.bytes.equals(merged.bytes), 'the adapter changed the merged weights');

    inMemory(fx.base, fx.adapter, 'maximal', out('want-f32'), true, 'F32');
    streamExtract(fx.base, fx.adapter, 'maximal', out('f32'), { merge: true, dtype: 'F32' });
    assertSameModel(out('f32'), out('want-f32'), '--dtype f32');
    streamExtract(fx.base, fx.adapter, 'maximal', out('f16'), { merge: true, dtype: 'F16' });
    const f32 = tensors(out('f32'));
    for (const [name, t] of tensors(out('f16'))) {
      assert.equal(t.dtype, 'F16', name);
      const src = f32.get(name)!.bytes;
      const want = new Uint16Array(src.length / 4);
      f32ToF16(new Float32Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.length)), want);
      assert.ok(t.bytes.equals(Buffer.from(want.buffer)), `${name}: the float32 merge rounded to F16`);
    }
    assert.equal(JSON.parse(readFileSync(join(out('f16'), 'config.json'), 'utf8')).torch_dtype, 'float16');
  } finally {
    rmSync(fx.root, { recursive: true, force: true });
  }
});

test('an F32 base is written as F32 by default; a failed write leaves the target as it was', () => {
  const fx = fixture(CASES[1], 'F32');
  try {
    const out = join(fx.root, 'out');
    assert.equal(streamExtract(fx.base, fx.adapter, 'minimal', out, { merge: true }).dtype, 'F32');
    for (const t of tensors(out).values()) assert.equal(t.dtype, 'F32');
    const before = readdirSync(out).sort();
    // a QA-SparsePEFT adapter on a float base fails at its first layer, after the embedding was written
    const record = join(fx.adapter, 'lonas_adapter.json');
    writeFileSync(record, JSON.stringify({ ...JSON.parse(readFileSync(record, 'utf8')), mode: 'qa' }));
    assert.throws(() => streamExtract(fx.base, fx.adapter, 'maximal', out, { merge: true }), /no INT4 quantiser/);
    assert.deepEqual(readdirSync(out).sort(), before);
    assert.deepEqual(
      readdirSync(fx.root).filter((f) => f.startsWith('.out.tmp')),
      [],
      'no temporary directory is left behind',
    );
  } finally {
    rmSync(fx.root, { recursive: true, force: true });
  }
});
