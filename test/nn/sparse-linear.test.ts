/** SparseLinear: a ≥ 50%-sparse model loaded for inference runs the sparse kernel and computes the same logits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { pruneModel } from '../../src/compress/prune.ts';
import { useSparseKernels } from '../../src/nas/load.ts';
import { SparseLinear } from '../../src/nn/sparse-linear.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import { assertClose } from '../helpers/assert-close.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

test('sparse kernels switch on at ≥ 50% zeros and agree with the dense weights (prefill and decode)', () => {
  const m = tinyModel(4);
  pruneModel(m, [], { method: 'magnitude', sparsity: 0.6, targets: [...PROJECTIONS] });
  const ids = Int32Array.from([1, 5, 9, 3, 22, 17, 8, 2]);
  const dense = T.noGrad(() => m.forward(ids, 1, 8)).toArray();
  const denseStep = (() => {
    const c = m.newCache(1, 8);
    return ids.length ? Array.from(ids).flatMap((t) => m.forwardCached(Int32Array.of(t), 1, 1, c).toArray()) : [];
  })();
  assert.equal(useSparseKernels(m), 14, 'every projection switched');
  assert.ok(m.layers[0].proj.q_proj instanceof SparseLinear);
  assertClose(T.noGrad(() => m.forward(ids, 1, 8)).toArray(), dense, 'prefill logits', { rtol: 1e-5, atol: 1e-5 });
  const c = m.newCache(1, 8);
  assertClose(
    Array.from(ids).flatMap((t) => m.forwardCached(Int32Array.of(t), 1, 1, c).toArray()),
    denseStep,
    'decode logits',
    { rtol: 1e-5, atol: 1e-5 },
  );
  const denseModel = tinyModel(4);
  assert.equal(useSparseKernels(denseModel), 0, 'dense weights stay dense');
});
