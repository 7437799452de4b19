/** GPTQ packing: bit-exact round trips for 2/3/4/8 bits, and the fixture's AutoGPTQ-packed tensors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/tensor/rng.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { packQweight, packQzeros, unpackQweight, unpackQzeros } from '../../src/io/gptq-format.ts';

test('pack/unpack round trips bit-exactly for 2, 3, 4 and 8 bits', () => {
  const rng = new Rng(1);
  for (const bits of [2, 3, 4, 8]) {
    const out = 64,
      inF = 96,
      groups = 3;
    const q = Uint8Array.from({ length: out * inF }, () => rng.int(2 ** bits));
    assert.deepEqual(unpackQweight(packQweight(q, out, inF, bits), out, inF, bits), q, `${bits}-bit qweight`);
    const zeros = Float32Array.from({ length: groups * out }, () => 1 + rng.int(2 ** bits - 1));
    for (const f of ['gptq', 'gptq_v2'] as const)
      assert.deepEqual(unpackQzeros(packQzeros(zeros, groups, out, bits, f), groups, out, bits, f), zeros, `${bits}-bit ${f} qzeros`);
  }
  const odd = Uint8Array.from({ length: 3 * 13 }, (_, k) => k % 16); // widths that do not fill whole words are padded
  assert.deepEqual(unpackQweight(packQweight(odd, 3, 13, 4), 3, 13, 4), odd);
});

test('packing equals AutoGPTQ on the golden fixture (v1 zeros stored minus one)', () => {
  const fx = new SafetensorsFile(fileURLToPath(new URL('../golden/fixtures/gptq.safetensors', import.meta.url)));
  const out = 24,
    inF = 256;
  for (const v of ['plain', 'actorder', 'sparse']) {
    const q = fx.readRaw(`${v}.q`);
    assert.deepEqual(Array.from(packQweight(q, out, inF, 4)), Array.from(fx.readInt32(`${v}.qweight`).data), `${v}.qweight`);
    const zeros = fx.readFloat32(`${v}.zeros`).data;
    assert.deepEqual(Array.from(packQzeros(zeros, 2, out, 4, 'gptq')), Array.from(fx.readInt32(`${v}.qzeros`).data), `${v}.qzeros`);
  }
});
