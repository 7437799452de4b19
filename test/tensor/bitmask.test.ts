/** BitMask: one bit per entry, round trips through bytes at lengths that are not whole bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BitMask } from '../../src/tensor/index.ts';

test('BitMask packs 0/1 entries one bit each and reads them back', () => {
  for (const n of [1, 7, 8, 9, 77]) {
    const bytes = Uint8Array.from({ length: n }, (_, k) => ((k * 5 + 3) % 7 < 3 ? 1 : 0));
    const m = BitMask.pack(bytes);
    assert.equal(m.bits.length, Math.ceil(n / 8));
    assert.deepEqual(m.unpack(), bytes);
    assert.deepEqual(
      Array.from({ length: n }, (_, k) => m.get(k)),
      Array.from(bytes),
    );
  }
  assert.throws(() => new BitMask(9, new Uint8Array(1)), /1 bytes for 9 entries/);
});
