/** SparsePEFT and QA-SparsePEFT: merged weights keep the base's zeros exactly; merged == unmerged logits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { addLora, loraModules } from '../../src/adapters/peft.ts';
import { enableQuantAware, enableSparsePeft } from '../../src/adapters/sqft.ts';
import { pruneModel } from '../../src/compress/prune.ts';
import { extractMerged } from '../../src/nas/extract.ts';
import { causalLmLoss } from '../../src/models/llama/loss.ts';
import type { LlamaModel } from '../../src/models/llama/model.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const ids = Int32Array.from([1, 5, 9, 3, 22, 17, 8, 2, 30, 11, 4, 6]);
const logits = (m: LlamaModel) => T.noGrad(() => m.forward(ids, 2, 6)).toArray();
const ALL = [...PROJECTIONS];

function sparseWithAdapters(seed = 1) {
  const m = tinyModel(seed);
  pruneModel(m, [], { method: 'magnitude', sparsity: 0.5, targets: ALL });
  const loras = addLora(m, { rank: 4, alpha: 8, dropout: 0, targets: ALL }, 2);
  const rng = new T.Rng(5);
  for (const l of loras) l.loraB.data.forEach((_, i, a) => (a[i] = rng.normal() * 0.1));
  return { m, loras };
}

function zeroPattern(m: LlamaModel): boolean[] {
  return [...m.namedParameters().entries()]
    .filter(([n]) => /_proj\.weight$/.test(n))
    .flatMap(([, t]) => Array.from(t.data, (v) => v === 0));
}

test('SparsePEFT: merged weights keep exactly the base zeros; merged logits equal the masked adapter logits', () => {
  const { m, loras } = sparseWithAdapters();
  const before = zeroPattern(m);
  assert.ok(Math.abs(enableSparsePeft(loras) - 0.5) < 1e-9);
  const adapted = logits(m);
  const merged = extractMerged(m);
  assert.deepEqual(zeroPattern(merged), before, 'sparsity pattern before == after merge');
  assertClose(logits(merged), adapted, 'merged vs unmerged', { rtol: 1e-5, atol: 1e-5 });
  // without the mask the merge would fill the zeros
  const { m: plain } = sparseWithAdapters();
  assert.notDeepEqual(zeroPattern(extractMerged(plain)), before);
});

test('SparsePEFT: gradients reach A and B through the mask only', () => {
  const { m, loras } = sparseWithAdapters();
  enableSparsePeft(loras);
  T.backward(causalLmLoss(m.forward(ids, 2, 6), ids));
  for (const l of loras) assert.ok(l.loraA.grad!.toArray().some((g) => g !== 0) && l.loraB.grad!.toArray().some((g) => g !== 0));
});

test('QA-SparsePEFT: the forward equals the dequantised INT4 merge; zeros stay zero; straight-through gradients', () => {
  const { m, loras } = sparseWithAdapters();
  enableSparsePeft(loras);
  // a round-to-nearest group-wise INT4 quantiser per base weight (groups of 8 inputs), zero kept exactly
  const quants = new Map<string, T.QuantParams>();
  for (const l of loras) {
    const [out, inF] = l.base.weight.shape,
      G = 8,
      groups = inF / G;
    const scales = new Float32Array(groups * out),
      zeros = new Float32Array(groups * out);
    for (let g = 0; g < groups; g++)
      for (let o = 0; o < out; o++) {
        let lo = 0,
          hi = 0;
        for (let j = g * G; j < (g + 1) * G; j++) {
          lo = Math.min(lo, l.base.weight.data[o * inF + j]);
          hi = Math.max(hi, l.base.weight.data[o * inF + j]);
        }
        const s = (hi - lo) / 15 || 1;
        scales[g * out + o] = s;
        zeros[g * out + o] = Math.round(-lo / s);
      }
    quants.set(l.name, { scales, zeros, gIdx: Int32Array.from({ length: inF }, (_, j) => Math.floor(j / G)), maxq: 15, out });
  }
  enableQuantAware(loras, (n) => quants.get(n));
  const qa = logits(m);
  // the INT4 merge: quantise W + ΔW ⊙ M with the same scales/zeros and dequantise
  const merged = extractMerged(m); // W + ΔW ⊙ M (float)
  for (const l of loraModules(m)) {
    const name = l.base.weight.name!;
    const w = merged.namedParameters().get(name)!;
    const q = T.noGrad(() => T.fakeQuant(w, quants.get(l.name)!)).data;
    w.data.set(q);
    l.base.weight.data.forEach((v, k) => {
      if (v === 0) assert.equal(q[k], 0, `${name}[${k}] stays zero`);
    });
  }
  assertClose(logits(merged), qa, 'INT4 merged vs quantisation-aware forward', { rtol: 1e-5, atol: 1e-5 });
  T.backward(causalLmLoss(m.forward(ids, 2, 6), ids));
  for (const l of loras)
    assert.ok(
      l.loraB.grad!.toArray().some((g) => g !== 0),
      'STE passes gradients',
    );
  assert.throws(
    () =>
      enableQuantAware(
        loras.map((l) => Object.assign(l, { dropoutP: 0.1 })),
        (n) => quants.get(n),
      ),
    /--dropout 0/,
  );
});
