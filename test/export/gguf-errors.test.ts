/** Bad input to the GGUF exporter: one clear error naming the file or option, and no file written. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exportGguf } from '../../src/export/gguf/convert.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.ts';
import { STORIES_F32 } from '../helpers/assets.ts';

const dir = mkdtempSync(join(tmpdir(), 'lonas-gguf-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const copy = (name: string) => {
  const d = join(dir, name);
  cpSync(STORIES_F32(), d, { recursive: true });
  return d;
};

test('a model without tokenizer.json is refused before anything is written', () => {
  const d = copy('no-tokenizer');
  rmSync(join(d, 'tokenizer.json'));
  assert.throws(() => exportGguf(d, join(dir, 'a.gguf'), 'f32'), /tokenizer\.json: missing \(GGUF embeds the tokenizer/);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.gguf')),
    [],
  );
});

test('a tensor with no GGUF counterpart is refused, not dropped', () => {
  const d = copy('extra-tensor');
  const f = new SafetensorsFile(join(d, 'model.safetensors'));
  const tensors = Object.fromEntries(
    [...f.entries.keys()].map((n) => {
      const t = f.readFloat32(n);
      return [n, { dtype: 'F32' as const, shape: t.shape, data: t.data }];
    }),
  );
  f.close();
  tensors['model.layers.0.mlp.extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
  writeSafetensors(join(d, 'model.safetensors'), tensors);
  assert.throws(() => exportGguf(d, join(dir, 'b.gguf'), 'q8_0'), /tensors with no GGUF counterpart: model\.layers\.0\.mlp\.extra\.weight/);
  assert.ok(!existsSync(join(dir, 'b.gguf')));
});

test('a tensor whose shape does not match config.json is refused, naming the file and the tensor', () => {
  const d = copy('wrong-shape');
  const configPath = join(d, 'config.json');
  writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), intermediate_size: 128 }));
  assert.throws(
    () => exportGguf(d, join(dir, 'd.gguf'), 'f32'),
    /model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[172, 64\], config\.json's sizes give \[128, 64\]/,
  );
  assert.ok(!existsSync(join(dir, 'd.gguf')));
});

test('lonas export: --subnet without --adapter, and an unknown --type, are usage errors', () => {
  const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [BIN, 'export', '--model', STORIES_F32(), '--format', 'gguf', '--out', join(dir, 'c.gguf'), ...args], {
      encoding: 'utf8',
    });
  const noAdapter = run('--subnet', 'minimal');
  assert.equal(noAdapter.status, 1);
  assert.match(noAdapter.stderr, /--subnet needs --adapter/);
  const badType = run('--type', 'q5_k');
  assert.notEqual(badType.status, 0);
  assert.match(badType.stderr, /--type.*q5_k.*(f32|Allowed)/s);
  assert.ok(!existsSync(join(dir, 'c.gguf')));
});
