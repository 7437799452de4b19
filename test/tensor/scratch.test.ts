/** Pooled inference buffers (src/tensor/scratch.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scratchF32, scratchF32Out, setScratchPoison, withScratch } from '../../src/tensor/scratch.ts';
import { allocLike } from '../../src/tensor/tensor.ts';

test('outside a scope every buffer is new; inside, buffers return to the pool and come back zeroed', () => {
  const a = scratchF32(7),
    b = scratchF32(7);
  assert.notEqual(a, b);
  let first: Float32Array | null = null;
  withScratch(() => {
    first = scratchF32(1000);
    first.fill(3);
  });
  const again = withScratch(() => {
    const x = scratchF32(1000);
    return { same: x === first, zeros: x.every((v) => v === 0) };
  });
  assert.deepEqual(again, { same: true, zeros: true });
  // a buffer lent in a scope is not lent twice while the scope runs
  withScratch(() => assert.notEqual(scratchF32(1000), scratchF32(1000)));
});

test('nested scopes return only their own buffers; op outputs (allocLike) are pooled, float64 never', () => {
  withScratch(() => {
    const outer = scratchF32(64);
    let inner: Float32Array | null = null;
    withScratch(() => {
      inner = scratchF32(64);
    });
    // the inner buffer is free again, the outer one still lent
    const next = scratchF32(64);
    assert.equal(next, inner);
    assert.notEqual(next, outer);
  });
  const f32 = withScratch(() => allocLike(new Float32Array(1), 333));
  assert.equal(
    withScratch(() => allocLike(new Float32Array(1), 333)),
    f32,
  );
  const f64 = withScratch(() => allocLike(new Float64Array(1), 333));
  assert.ok(f64 instanceof Float64Array);
  assert.notEqual(
    withScratch(() => allocLike(new Float64Array(1), 333)),
    f64,
  );
});

test('scratchF32Out lends pooled buffers as they are (not zeroed), fresh ones of the right length, NaN under the poison hook', () => {
  let first: Float32Array | null = null;
  withScratch(() => {
    first = scratchF32Out(333);
    first.fill(5);
  });
  const again = withScratch(() => {
    const x = scratchF32Out(333);
    return { same: x === first, kept: x.every((v) => v === 5) };
  });
  assert.deepEqual(again, { same: true, kept: true });
  const fresh = scratchF32Out(4097);
  assert.equal(fresh.length, 4097);
  assert.equal(fresh.byteOffset % 4, 0);
  setScratchPoison(true);
  try {
    assert.ok(scratchF32Out(4097).every(Number.isNaN), 'a fresh buffer');
    withScratch(() => scratchF32Out(333).fill(1));
    assert.ok(
      withScratch(() => scratchF32Out(333).every(Number.isNaN)),
      'a pooled buffer',
    );
  } finally {
    setScratchPoison(false);
  }
});
