/** `lonas sparsify --dtype` from the command line: the written model keeps the base's BF16 by default, f32 when asked; a bad value names the flag. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveModelDir } from '../../src/models/llama/checkpoint.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { lonas } from '../helpers/cli.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

function storedDtypes(dir: string): string[] {
  const out = new Set<string>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
    const st = new SafetensorsFile(join(dir, f));
    for (const e of st.entries.values()) out.add(e.dtype);
    st.close();
  }
  return [...out];
}

test('lonas sparsify writes a BF16 base as BF16 (norms included) unless --dtype says otherwise', () => {
  const root = mkdtempSync(join(tmpdir(), 'lonas-dtype-'));
  try {
    const src = join(root, 'base');
    saveModelDir(src, tinyModel(2, tinyConfig({ numLayers: 3 })), { dtype: 'BF16' });
    const run = (...extra: string[]) => lonas('sparsify', '--model', src, '--method', 'magnitude', ...extra);
    run('--out', join(root, 'default'));
    assert.deepEqual(storedDtypes(join(root, 'default')), ['BF16']);
    run('--dtype', 'f32', '--out', join(root, 'f32'));
    assert.deepEqual(storedDtypes(join(root, 'f32')), ['F32']);
    assert.equal(JSON.parse(readFileSync(join(root, 'f32', 'config.json'), 'utf8')).torch_dtype, 'float32');
    const bin = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
    const bad = spawnSync(
      process.execPath,
      [bin, 'sparsify', '--model', src, '--method', 'magnitude', '--dtype', 'f64', '--out', join(root, 'x')],
      {
        encoding: 'utf8',
      },
    );
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--dtype/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
