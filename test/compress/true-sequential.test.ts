/**
 * True-sequential layer-wise calibration (compress/calibrate.ts sequentialLayer): each group of SEQUENTIAL_GROUPS is
 * observed on the inputs the already-compressed groups produce. Checked against the plain definition — after each
 * group is compressed, run the whole layer again on every sequence — bit for bit (every observed input and the next
 * layer's inputs), with every projection's output computed once per sequence rather than once per pass; and the
 * order matters (the all-at-once order observes other inputs), for GPTQ too (its default; test/compress/stream.test.ts
 * shows the streamed path still equals the in-memory one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibrateLayerwise } from '../../src/compress/calibrate.ts';
import { quantizeModel } from '../../src/compress/quantize.ts';
import type { LlamaModel, ProjectionName } from '../../src/models/llama/model.ts';
import { PROJECTIONS, SEQUENTIAL_GROUPS } from '../../src/models/llama/model.ts';
import type { LinearLike } from '../../src/nn/modules.ts';
import { Rng, noGrad } from '../../src/tensor/index.ts';
import type { Tensor } from '../../src/tensor/index.ts';
import { tinyConfig, tinyModel } from '../helpers/tiny-model.ts';

const rng = new Rng(5);
const samples = Array.from({ length: 3 }, () => Int32Array.from({ length: 9 }, () => rng.int(40)));
const model = () => tinyModel(4, tinyConfig({ numLayers: 3 }));

/** A stand-in compression that changes every output: weights rounded to a coarse grid (as quantisation does). */
function compress(m: LinearLike): void {
  const w = m.baseTensors()[0].data;
  for (let j = 0; j < w.length; j++) w[j] = Math.round(w[j] * 8) / 8;
}

/** Observed inputs by `layer proj sequence`, copied (the observer's array is the op's own). */
type Seen = Map<string, Float32Array>;

/** `m` with `tap(x)` called on every forward input. */
function tapped(m: LinearLike, tap: (x: Tensor) => void): LinearLike {
  return {
    get inFeatures() {
      return m.inFeatures;
    },
    get outFeatures() {
      return m.outFeatures;
    },
    forward: (x: Tensor) => {
      tap(x);
      return m.forward(x);
    },
    trainable: () => m.trainable(),
    baseTensors: () => m.baseTensors(),
  };
}

function runCalibration(m: LlamaModel, trueSequential: boolean, calls?: Map<ProjectionName, number>) {
  const seen: Seen = new Map();
  const heads: Float32Array[] = [];
  if (calls)
    for (const l of m.layers) for (const p of PROJECTIONS) l.proj[p] = tapped(l.proj[p], () => calls.set(p, (calls.get(p) ?? 0) + 1));
  calibrateLayerwise(m, samples, {
    beforeLayer: (i) => {
      const observed = new Map<ProjectionName, number>(); // a projection's n-th observation in a layer is sequence n
      return (proj, x) => {
        const n = observed.get(proj) ?? 0;
        observed.set(proj, n + 1);
        seen.set(`${i} ${proj} ${n}`, Float32Array.from(x));
      };
    },
    compressLayer: (i, projections) => {
      for (const p of projections) compress(m.layers[i].proj[p]);
    },
    headInput: (x) => heads.push(Float32Array.from(x)),
    trueSequential,
  });
  return { seen, heads };
}

/** The definition: after each group is compressed, the whole layer runs again on every sequence. */
function reference(m: LlamaModel) {
  const seen: Seen = new Map();
  const heads: Float32Array[] = [];
  noGrad(() => {
    let hidden = samples.map((s) => m.embed.forward(s, [1, s.length]));
    const positions = samples.map((s) => Int32Array.from({ length: s.length }, (_, i) => i));
    m.layers.forEach((layer, i) => {
      for (const group of SEQUENTIAL_GROUPS) {
        hidden.forEach((h, k) => {
          const plain = { ...layer.proj };
          for (const p of group) layer.proj[p] = tapped(plain[p], (x) => seen.set(`${i} ${p} ${k}`, Float32Array.from(x.contiguousData())));
          m.forwardLayer(i, h, positions[k]);
          Object.assign(layer.proj, plain);
        });
        for (const p of group) compress(layer.proj[p]);
      }
      hidden = hidden.map((h, k) => m.forwardLayer(i, h, positions[k]));
    });
    for (const h of hidden) heads.push(Float32Array.from(m.norm.forward(h).contiguousData()));
  });
  return { seen, heads };
}

test('true-sequential calibration observes what re-running the layer after each group gives, bit for bit, computing each projection once per sequence', () => {
  const calls = new Map<ProjectionName, number>();
  const got = runCalibration(model(), true, calls);
  const want = reference(model());
  assert.equal(got.seen.size, 3 * PROJECTIONS.length * samples.length);
  assert.deepEqual([...got.seen.keys()].sort(), [...want.seen.keys()].sort());
  for (const [key, x] of want.seen) assert.deepEqual(got.seen.get(key), x, key);
  assert.deepEqual(got.heads, want.heads);
  // observed once (zeros returned) and computed once, per sequence and layer
  for (const p of PROJECTIONS) assert.equal(calls.get(p), 3 * samples.length, `${p} forward calls`);
});

test('the all-at-once order observes other inputs (every group sees the uncompressed layer)', () => {
  const seq = runCalibration(model(), true).seen;
  const all = runCalibration(model(), false).seen;
  assert.deepEqual(seq.get('0 q_proj 1'), all.get('0 q_proj 1')); // the first group's inputs agree
  for (const p of ['o_proj', 'gate_proj', 'down_proj'] as const) assert.notDeepEqual(seq.get(`0 ${p} 1`), all.get(`0 ${p} 1`), p);
});

/** The final hidden states (after the norm) of every sequence. */
function finalStates(m: LlamaModel): Float32Array[] {
  const out: Float32Array[] = [];
  noGrad(() => {
    for (const s of samples) {
      let h = m.embed.forward(s, [1, s.length]);
      const pos = Int32Array.from({ length: s.length }, (_, i) => i);
      m.layers.forEach((_, i) => (h = m.forwardLayer(i, h, pos)));
      out.push(Float32Array.from(m.norm.forward(h).contiguousData()));
    }
  });
  return out;
}

test('GPTQ in true-sequential order (the default) gives other codes than all at once', () => {
  const opts = { bits: 3, groupSize: 8, actOrder: false, percDamp: 0.01, blockSize: 128, targets: [...PROJECTIONS] };
  const [byDefault, seq, all] = [undefined, true, false].map((trueSequential) => {
    const m = model();
    quantizeModel(m, samples, { ...opts, trueSequential });
    return finalStates(m);
  });
  assert.deepEqual(byDefault, seq);
  assert.notDeepEqual(seq, all);
});
