/** lonas's q8_0 / q4_0 / q4_1 blocks are byte-identical to llama.cpp's reference quantizer (gguf-py) on the same rows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dequantizeBlocks, quantizeBlocks } from '../../src/export/gguf/quants.ts';
import type { BlockType } from '../../src/export/gguf/quants.ts';

const fixture = JSON.parse(readFileSync(new URL('../golden/fixtures/gguf_blocks.json', import.meta.url), 'utf8')) as {
  cols: number;
  cases: Record<string, Record<string, string> & { shape: number[] }>;
};
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));

for (const [name, c] of Object.entries(fixture.cases)) {
  const raw = bytes(c.f32);
  const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  for (const type of ['Q8_0', 'Q4_0', 'Q4_1'] as BlockType[]) {
    test(`${type} blocks of '${name}' rows equal llama.cpp's reference quantizer`, () => {
      const got = quantizeBlocks(x, fixture.cols, type),
        want = bytes(c[type.toLowerCase()]);
      assert.equal(got.length, want.length);
      const first = got.findIndex((b, i) => b !== want[i]);
      assert.equal(first, -1, `first differing byte ${first}: got ${got[first]}, llama.cpp ${want[first]}`);
    });
  }
}

// half a step (q4_0: a whole step on the side opposite its largest value, which only reaches code 15 = +7),
// plus the F16 rounding of the scale, which moves the top code by up to levels · 2^-11 steps
test('dequantized blocks stay within half a quantization step of the input (plus the F16 scale rounding)', () => {
  const c = fixture.cases.normal,
    raw = bytes(c.f32);
  const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  for (const [type, levels] of [
    ['Q8_0', 127],
    ['Q4_0', 8],
    ['Q4_1', 15],
  ] as [BlockType, number][]) {
    const back = dequantizeBlocks(quantizeBlocks(x, fixture.cols, type), type);
    for (let b = 0; b < x.length; b += 32) {
      const block = x.subarray(b, b + 32);
      const range = type === 'Q4_1' ? Math.max(...block) - Math.min(...block) : Math.max(...block.map(Math.abs));
      const step = range / levels;
      for (let j = 0; j < 32; j++)
        assert.ok(
          Math.abs(back[b + j] - block[j]) <= step * ((type === 'Q4_0' ? 1 : 0.5) + levels * 2 ** -11) + 1e-7,
          `${type} element ${b + j}`,
        );
    }
  }
});

test('q8_0 and q4_0 keep the zeros of a sparse (SparsePEFT-merged) row exactly; q4_1 need not', () => {
  const raw = bytes(fixture.cases.normal.f32);
  const x = Float32Array.from(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), (v, i) => (i % 2 ? 0 : v));
  for (const type of ['Q8_0', 'Q4_0'] as BlockType[]) {
    const back = dequantizeBlocks(quantizeBlocks(x, fixture.cols, type), type);
    x.forEach((v, i) => {
      if (v === 0) assert.ok(back[i] === 0, `${type} element ${i}: ${back[i]}`);
    }); // −0 counts as zero
  }
});
