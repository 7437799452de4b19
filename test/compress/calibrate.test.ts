/**
 * The layer-wise calibration loop (src/compress/calibrate.ts) on a tiny Llama (2 layers): every projection's input
 * is observed once per sequence and layer, the observation pass skips down_proj's output (it reaches only the
 * discarded layer output), and the hidden states carried to the head are the model's own forward.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibrateLayerwise } from '../../src/compress/calibrate.ts';
import { PROJECTIONS } from '../../src/models/llama/model.ts';
import type { ProjectionName } from '../../src/models/llama/model.ts';
import type { LinearLike } from '../../src/nn/modules.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import type { Tensor } from '../../src/tensor/index.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

/** Counts the forward calls of the projection it wraps. */
class Counted implements LinearLike {
  calls = 0;
  constructor(private readonly inner: LinearLike) {}
  get inFeatures() {
    return this.inner.inFeatures;
  }
  get outFeatures() {
    return this.inner.outFeatures;
  }
  forward(x: Tensor): Tensor {
    this.calls++;
    return this.inner.forward(x);
  }
  trainable() {
    return this.inner.trainable();
  }
  baseTensors() {
    return this.inner.baseTensors();
  }
}

test('calibrateLayerwise: each input observed once, down_proj computed only in the pass that feeds the next layer', () => {
  const model = tinyModel(3);
  const rng = new Rng(4);
  const samples = Array.from({ length: 3 }, () => Int32Array.from({ length: 7 }, () => rng.int(40)));
  const counted = model.layers.map((layer) => {
    const c = Object.fromEntries(PROJECTIONS.map((p) => [p, new Counted(layer.proj[p])])) as Record<ProjectionName, Counted>;
    for (const p of PROJECTIONS) layer.proj[p] = c[p];
    return c;
  });
  const seen = model.layers.map(() => new Map<ProjectionName, number>());
  const heads: Float32Array[] = [];
  calibrateLayerwise(model, samples, {
    beforeLayer: (l) => (proj, _x, tokens) => seen[l].set(proj, (seen[l].get(proj) ?? 0) + tokens),
    compressLayer: () => {},
    headInput: (x) => heads.push(Float32Array.from(x)),
  });
  const tokens = samples.length * 7;
  counted.forEach((c, l) => {
    for (const p of PROJECTIONS) {
      assert.equal(seen[l].get(p), tokens, `layer ${l} ${p}: every token's input observed once`);
      const passes = p === 'down_proj' ? 1 : 2; // observation (output discarded) + the pass that feeds the next layer
      assert.equal(c[p].calls, passes * samples.length, `layer ${l} ${p}: forward calls`);
    }
  });
  noGrad(() =>
    samples.forEach((s, k) => {
      let h = model.embed.forward(s, [1, s.length]);
      const pos = Int32Array.from(s, (_, i) => i);
      for (let i = 0; i < model.layers.length; i++) h = model.forwardLayer(i, h, pos);
      assert.deepEqual(heads[k], model.norm.forward(h).contiguousData(), `sample ${k}: the head sees the model's own hidden states`);
    }),
  );
});
