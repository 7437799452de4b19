/**
 * `lonas merge` and `lonas extract --merge` from the command line: a BF16 base is written as BF16 unless
 * --dtype says otherwise, and --dtype f32|f16 writes exactly what the library call writes in that dtype.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { streamExtract } from '../../src/nas/extract-stream.ts';
import { lonas } from '../helpers/cli.ts';
import { CASES, fixture, tensors } from '../helpers/stream-fixture.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));
const dtypes = (dir: string) => new Set([...tensors(dir).values()].map((t) => t.dtype));

test('lonas merge / extract --merge keep a BF16 base BF16 by default; --dtype f32 and f16 choose', () => {
  const fx = fixture(CASES[0]);
  try {
    const out = (d: string) => join(fx.root, d);
    const r = spawnSync(process.execPath, [BIN, 'merge', '--model', fx.base, '--adapter', fx.adapter, '--out', out('merged')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /stored as BF16; written to/);
    assert.deepEqual(dtypes(out('merged')), new Set(['BF16']));
    for (const [flag, dtype] of [
      ['f32', 'F32'],
      ['f16', 'F16'],
    ] as const) {
      lonas('merge', '--model', fx.base, '--adapter', fx.adapter, '--dtype', flag, '--out', out(`merged-${flag}`));
      streamExtract(fx.base, fx.adapter, 'maximal', out(`want-${flag}`), { merge: true, dtype });
      const got = tensors(out(`merged-${flag}`)),
        want = tensors(out(`want-${flag}`));
      assert.deepEqual(dtypes(out(`merged-${flag}`)), new Set([dtype]));
      for (const [name, t] of want) assert.ok(got.get(name)!.bytes.equals(t.bytes), `--dtype ${flag}: ${name}`);
    }
    const report = lonas(
      'extract',
      '--merge',
      '--model',
      fx.base,
      '--adapter',
      fx.adapter,
      '--subnet',
      'minimal',
      '--out',
      out('extracted'),
    );
    assert.match(report, /stored as BF16/);
    assert.deepEqual(dtypes(out('extracted')), new Set(['BF16']));
    const record = JSON.parse(readFileSync(join(out('extracted'), 'lonas_extract.json'), 'utf8'));
    assert.equal(record.dtype, 'bf16');
    assert.throws(() => lonas('merge', '--model', fx.base, '--adapter', fx.adapter, '--dtype', 'f8', '--out', out('bad')), /--dtype/);
  } finally {
    rmSync(fx.root, { recursive: true, force: true });
  }
});
