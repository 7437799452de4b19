/** The `compressed` bench's options: --formats picks the models to build and time (f32, the baseline, always). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from '../../bench/compressed.ts';
import { FORMATS } from '../../bench/compressed-models.ts';

test('--formats keeps f32 and the listed formats, in the canonical order', () => {
  assert.deepEqual(parseArgs([]).formats, [...FORMATS]);
  assert.deepEqual(parseArgs(['--formats', 'sparse']).formats, ['f32', 'sparse']);
  assert.deepEqual(parseArgs(['--formats', 'int4_head,sparse,f32']).formats, ['f32', 'sparse', 'int4_head']);
});

test('--formats names an unknown format in its error', () => {
  assert.throws(() => parseArgs(['--formats', 'sparse,q4']), /--formats: 'q4' is not one of f32, int4, sparse, int4_bf16, int4_head/);
});
