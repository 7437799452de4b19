/**
 * `npm run bench -- gptq-layer` (issue 15): GPTQ of ONE decoder layer of the Llama-2-7B shape (hidden 4096,
 * intermediate 11008, 32 heads; random weights rounded to bf16, as `lonas quantize` widens them) with
 * `--calib` samples × `--calib-len` tokens (32 × 512), through quantizeModel as `lonas quantize` runs it (4-bit,
 * group 128): wall and CPU seconds by phase (calibration forward passes, Hessians, factorisations, GPTQ column
 * loops, dequantised weights), the process's peak RSS, and the projection to 32 layers (+ the LM head with
 * `--lm-head`: GPTQ of a (32000, 4096) head with its (4096, 4096) Hessian from 32 × 512 tokens, timed on its own).
 * On a shared machine the wall seconds measure the contention; the CPU seconds bound a quiet run: between
 * CPU / 2 (both cores busy throughout) and CPU (one).
 *
 * Options: --calib N (32) --calib-len N (512) --bits N (4) --group N (128) --act-order --lm-head --no-true-sequential
 * (the all-at-once order: two forward passes per layer) --layers N (32,
 * for the projection). The vocabulary of the one-layer model is small (the embedding is only looked up).
 */
import { Rng, Tensor } from '../src/tensor/index.ts';
import { f32ToBf16 } from '../src/io/safetensors.ts';
import { bf16ToF32 } from '../src/tensor/bf16.ts';
import { uniformConfig } from '../src/models/llama/config.ts';
import { LlamaModel, PROJECTIONS } from '../src/models/llama/model.ts';
import { quantizeModel } from '../src/compress/quantize.ts';
import type { QuantizePhases } from '../src/compress/quantize.ts';
import { gptqQuantize, prepareHessianInPlace } from '../src/compress/gptq.ts';
import { gramUpper } from '../src/kernels/linalg.ts';
import { backendInfo, nativeKernels } from '../src/kernels/index.ts';
import { randomLlamaWeights, log, machineBusy, round } from './common.ts';

interface Options {
  calib: number;
  calibLen: number;
  bits: number;
  group: number;
  actOrder: boolean;
  lmHead: boolean;
  layers: number;
  trueSequential: boolean;
}

function parse(args: string[]): Options {
  const o: Options = { calib: 32, calibLen: 512, bits: 4, group: 128, actOrder: false, lmHead: false, layers: 32, trueSequential: true };
  const ints = { '--calib': 'calib', '--calib-len': 'calibLen', '--bits': 'bits', '--group': 'group', '--layers': 'layers' } as const;
  for (let i = 0; i < args.length; i++) {
    const key = args[i];
    if (key === '--act-order') o.actOrder = true;
    else if (key === '--lm-head') o.lmHead = true;
    else if (key === '--no-true-sequential') o.trueSequential = false;
    else if (key in ints) {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${key} needs a positive integer, got '${args[i]}'`);
      o[ints[key as keyof typeof ints]] = n;
    } else
      throw new Error(
        `unknown option '${key}' (valid: --calib N --calib-len N --bits N --group N --act-order --lm-head --no-true-sequential --layers N)`,
      );
  }
  return o;
}

const HIDDEN = 4096,
  INTERMEDIATE = 11008,
  HEADS = 32,
  VOCAB = 32000;

/** t's values rounded to bfloat16 (the checkpoint's storage), in place. */
function roundToBf16(t: Tensor): Tensor {
  const d = t.data as Float32Array,
    bits = new Uint16Array(d.length);
  f32ToBf16(d, bits);
  bf16ToF32(bits, d);
  return t;
}

const peakGib = () => round(process.resourceUsage().maxRSS / 2 ** 20, 2); // maxRSS is in KiB

/**
 * GPTQ of the (VOCAB, HIDDEN) head: Hessian of calib × calibLen random inputs, factor, columns; wall seconds by
 * phase, and wall and CPU seconds in all.
 */
function headSeconds(o: Options, rng: Rng): { hessian: number; factor: number; columns: number; wall: number; cpu: number } {
  const cpu0 = process.cpuUsage(),
    wall0 = performance.now();
  const x = new Float32Array(o.calibLen * HIDDEN);
  const sum = new Float32Array(HIDDEN * HIDDEN);
  let t = performance.now();
  for (let s = 0; s < o.calib; s++) {
    for (let k = 0; k < x.length; k++) x[k] = rng.normal();
    gramUpper(x, o.calibLen, HIDDEN, 1, sum);
  }
  const hessian = (performance.now() - t) / 1000;
  t = performance.now();
  const H = new Float64Array(HIDDEN * HIDDEN);
  for (let i = 0; i < HIDDEN; i++)
    for (let j = i; j < HIDDEN; j++) H[i * HIDDEN + j] = H[j * HIDDEN + i] = (2 * sum[i * HIDDEN + j]) / o.calib;
  const prep = prepareHessianInPlace(H, HIDDEN, o.actOrder, 0.01);
  const factor = (performance.now() - t) / 1000;
  const w = roundToBf16(
    new Tensor(
      Float32Array.from({ length: VOCAB * HIDDEN }, () => rng.normal() * 0.02),
      [VOCAB, HIDDEN],
    ),
  );
  t = performance.now();
  gptqQuantize(w.data, VOCAB, HIDDEN, prep, { bits: o.bits, groupSize: o.group, actOrder: o.actOrder });
  const columns = (performance.now() - t) / 1000,
    c = process.cpuUsage(cpu0);
  return {
    hessian: round(hessian, 1),
    factor: round(factor, 1),
    columns: round(columns, 1),
    wall: round((performance.now() - wall0) / 1000, 1),
    cpu: round((c.user + c.system) / 1e6, 1),
  };
}

export async function main(args: string[]): Promise<unknown> {
  const o = parse(args);
  const busy = await machineBusy();
  const config = uniformConfig({
    vocabSize: 512,
    hiddenSize: HIDDEN,
    headDim: HIDDEN / HEADS,
    numLayers: 1,
    intermediateSize: INTERMEDIATE,
    numHeads: HEADS,
    numKvHeads: HEADS,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 4096,
    tieWordEmbeddings: false,
    attentionBias: false,
  });
  const rng = new Rng(15);
  log(`gptq-layer: building one Llama-2-7B-shape layer (random, bf16-rounded); ${busy.busy_pct_before}% of the CPUs busy before`);
  const weights = randomLlamaWeights(config, rng, 0.02);
  for (const w of weights.values()) if (w.ndim === 2) roundToBf16(w);
  const model = new LlamaModel(config, weights);
  const samples = Array.from({ length: o.calib }, () =>
    Int32Array.from({ length: o.calibLen }, (_, i) => (i === 0 ? 1 : rng.nextUint32() % config.vocabSize)),
  );
  log(
    `gptq-layer: quantizing (${o.calib} × ${o.calibLen} tokens, ${o.bits} bits, group ${o.group}${o.actOrder ? ', act-order' : ''}${o.trueSequential ? '' : ', all at once'})`,
  );
  nativeKernels()?.retainFreedMemory(); // as `lonas quantize` does (compress/stream.ts)
  const r = quantizeModel(model, samples, {
    bits: o.bits,
    groupSize: o.group,
    actOrder: o.actOrder,
    percDamp: 0.01,
    blockSize: 128,
    targets: [...PROJECTIONS],
    trueSequential: o.trueSequential,
  });
  const byPhase = (total: number, ph: QuantizePhases) => ({
    total: round(total, 1),
    forward: round(total - ph.hessian - ph.factor - ph.columns - ph.install, 1),
    hessian: round(ph.hessian, 1),
    factor: round(ph.factor, 1),
    columns: round(ph.columns, 1),
    install: round(ph.install, 1),
  });
  const layer = byPhase(r.seconds, r.phases),
    layerCpu = byPhase(r.cpuSeconds, r.cpuPhases);
  const layerPeak = peakGib();
  log(`gptq-layer: one layer, wall ${JSON.stringify(layer)} s; CPU ${JSON.stringify(layerCpu)} s; peak RSS ${layerPeak} GiB`);
  const head = o.lmHead ? headSeconds(o, rng) : null;
  if (head) log(`gptq-layer: LM head (${VOCAB}, ${HIDDEN}) ${JSON.stringify(head)}`);
  const projected = r.seconds * o.layers + (head?.wall ?? 0),
    cpu = r.cpuSeconds * o.layers + (head?.cpu ?? 0);
  log(
    `gptq-layer: ${o.layers} layers${head ? ' + head' : ''} projected ${round(projected / 60, 1)} min wall on this machine now; ` +
      `${round(cpu / 60, 1)} CPU-min (quiet 2 cores: between ${round(cpu / 120, 1)} and ${round(cpu / 60, 1)} min; goal < 60)`,
  );
  return {
    bench: 'gptq-layer',
    backend: backendInfo(),
    machine: busy,
    options: o,
    layer_s: layer,
    layer_cpu_s: layerCpu,
    layer_peak_rss_gib: layerPeak,
    head,
    peak_rss_gib: peakGib(),
    projected_min: round(projected / 60, 1),
    projected_cpu_min: round(cpu / 60, 1),
    under_1h: projected < 3600,
  };
}
