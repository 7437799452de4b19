/**
 * GPTQ over a whole model with the shared layer-wise calibration: for each layer (by default group by group in
 * AutoGPTQ's true-sequential order, compress/calibrate.ts), the Hessians of its projections' inputs are
 * accumulated (H = 2/N Σ_sequences Σ_tokens x xᵀ, as AutoGPTQ's add_batch), the projections are quantised, their float weights replaced by the dequantised ones (scales rounded to f16 as
 * the checkpoint stores them, so memory and file agree), and the next layer sees the quantised outputs.
 * Projections fed the same input (q/k/v, gate/up) share one Hessian and its factorisation.
 *
 * With `lmHead`, the LM head is quantised last the same way, its Hessian from its inputs in the quantised
 * model (the final RMSNorm of the last layer's outputs), as GPTQModel's `lm_head: true`. A head tied to the
 * embedding is untied first: the embedding keeps its float weights, the head becomes its own module.
 */
import { gramUpper, hessianFromGram } from '../kernels/linalg.ts';
import type { FloatArray } from '../kernels/api.ts';
import { f32ToF16, f16ToF32 } from '../io/safetensors.ts';
import { dequantize } from '../nn/quantized-weight.ts';
import type { QuantizedWeight } from '../nn/quantized-weight.ts';
import { Tensor } from '../tensor/index.ts';
import { Linear } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import { calibrateLayerwise } from './calibrate.ts';
import type { LayerStream } from './calibrate.ts';
import { gptqQuantize, prepareHessianInPlace } from './gptq.ts';
import type { PreparedHessian } from './gptq.ts';

export interface QuantizeOptions {
  bits: number;
  groupSize: number;
  actOrder: boolean;
  percDamp: number;
  blockSize: number;
  targets: ProjectionName[];
  /** keep zero weights exactly zero (sparse bases, SQFT) — on automatically when a weight has zeros */
  keepZeros?: boolean;
  /**
   * AutoGPTQ's true-sequential order (default): q/k/v, then o, gate/up and down, each quantised on the inputs the
   * already-quantised projections produce, one forward pass per layer; false: every projection on the float layer's
   * inputs, two passes (compress/calibrate.ts)
   */
  trueSequential?: boolean;
  /** also quantise the LM head (after the last layer; untied from the embedding) */
  lmHead?: boolean;
  onProgress?: (layer: number, layers: number) => void;
  /** the model's layers are streamed in and out (compress/stream.ts) */
  stream?: LayerStream;
}

interface HessianAcc {
  /** (in, in) Σ x xᵀ, upper triangle only (float32); null once widened into the prepared Hessian */
  sum: Float32Array | null;
  n: number;
  lastInput: Float32Array | null;
  inF: number;
  prepared?: PreparedHessian;
}

/**
 * `m` with its weight quantised as `qw`: scales rounded to float16 (what a GPTQ checkpoint stores, so memory
 * and file agree), the float weight replaced by the dequantised one, the INT4 kernel used at inference.
 */
export function toQuantLinear(m: Linear, qw: QuantizedWeight): QuantLinear {
  const h = new Uint16Array(qw.scales.length);
  f32ToF16(qw.scales, h);
  f16ToF32(h, qw.scales);
  m.weight.data.set(dequantize(qw));
  return new QuantLinear(m, qw);
}

/**
 * Replaces the float LM head by its quantisation `quantize(w (V, C))` (GPTQ here, RTN in the benchmarks).
 * A head tied to the embedding gets its own copy of the weight first, so the embedding keeps its float
 * weights, and the config is untied.
 */
export function quantizeLmHead(model: LlamaModel, quantize: (w: FloatArray, out: number, inF: number) => QuantizedWeight): void {
  const head = floatHead(model);
  const [V, C] = head.weightShape;
  const own =
    head.weightStore === model.embed.weightStore
      ? new Linear(new Tensor(Float32Array.from(head.weight.data), [V, C], { name: 'lm_head.weight' }))
      : head;
  model.lmHead = toQuantLinear(own, quantize(own.weight.data, V, C));
  model.config.tieWordEmbeddings = false;
}

function floatHead(model: LlamaModel): Linear {
  if (!(model.lmHead instanceof Linear))
    throw new Error(`quantize --lm-head: the LM head is a ${model.lmHead.constructor.name}, not a plain float Linear (already quantised?)`);
  return model.lmHead;
}

/** Σ xᵀx of one sequence's inputs x (tokens, in) into `acc`: upper triangle of (in, in) += xᵀ (in, T) · x (T, in) (ssyrk). */
function accumulate(acc: HessianAcc, x: Float32Array, tokens: number): void {
  if (!acc.sum) throw new Error('quantize: a Hessian was accumulated after it was factorised (a bug)');
  acc.n += 1;
  gramUpper(x, tokens, acc.inF, 1, acc.sum);
}

/**
 * H = 2/N Σ x xᵀ (in, in) float64, mirrored from the float32 upper triangle (which is then freed), damped and
 * factorised in place once (shared by the weights fed the same input).
 */
function prepared(acc: HessianAcc, o: QuantizeOptions): PreparedHessian {
  if (acc.prepared) return acc.prepared;
  const n = acc.inF,
    sum = acc.sum!;
  acc.sum = null;
  const H = hessianFromGram(sum, n, acc.n);
  acc.prepared = prepareHessianInPlace(H, n, o.actOrder, o.percDamp);
  return acc.prepared;
}

/**
 * Seconds of quantizeModel by phase: Hessian accumulation, their factorisation (widening, act-order permutation,
 * Cholesky and inverse), GPTQ's column loops and replacing the float weights (dequantise, INT4 module). The rest
 * is the calibration forward passes (and, streamed, reading and writing the layers).
 */
export interface QuantizePhases {
  hessian: number;
  factor: number;
  columns: number;
  install: number;
}

/** Wall and CPU seconds (this process, all threads: on a shared machine the steadier measure) by phase. */
interface PhaseTimes {
  wall: QuantizePhases;
  cpu: QuantizePhases;
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Runs f, adding its wall and CPU seconds to the phase. */
function timed<T>(times: PhaseTimes, phase: keyof QuantizePhases, f: () => T): T {
  const t0 = performance.now(),
    c0 = cpuSeconds();
  try {
    return f();
  } finally {
    times.wall[phase] += (performance.now() - t0) / 1000;
    times.cpu[phase] += cpuSeconds() - c0;
  }
}

/** GPTQ of one (out, in) weight; zero weights are kept exactly zero when asked, or when the weight has any. */
function gptq(w: FloatArray, out: number, inF: number, acc: HessianAcc, o: QuantizeOptions, phases: PhaseTimes): QuantizedWeight {
  let hasZeros = false;
  for (let k = 0; k < w.length && !hasZeros; k++) hasZeros = w[k] === 0;
  const prep = timed(phases, 'factor', () => prepared(acc, o));
  const qo = { bits: o.bits, groupSize: o.groupSize, actOrder: o.actOrder, blockSize: o.blockSize, keepZeros: o.keepZeros ?? hasZeros };
  return timed(phases, 'columns', () => gptqQuantize(w, out, inF, prep, qo));
}

/**
 * Returns the number of projections quantised (the LM head not included), the time taken and its phases, in wall
 * seconds and in CPU seconds of this process.
 */
export function quantizeModel(
  model: LlamaModel,
  samples: Int32Array[],
  o: QuantizeOptions,
): { modules: number; seconds: number; phases: QuantizePhases; cpuSeconds: number; cpuPhases: QuantizePhases } {
  const started = Date.now(),
    cpuStarted = cpuSeconds();
  const phases: PhaseTimes = {
    wall: { hessian: 0, factor: 0, columns: 0, install: 0 },
    cpu: { hessian: 0, factor: 0, columns: 0, install: 0 },
  };
  if (o.lmHead) floatHead(model); // refused before the calibration, not after it
  let accOf = new Map<ProjectionName, HessianAcc>();
  let byInput = new Map<Float32Array, HessianAcc>();
  let modules = 0;
  let installs: [number, ProjectionName, QuantLinear][] = [];
  const head: HessianAcc = { sum: new Float32Array(model.config.hiddenSize ** 2), n: 0, lastInput: null, inF: model.config.hiddenSize };
  calibrateLayerwise(model, samples, {
    beforeLayer: () => {
      accOf = new Map();
      byInput = new Map();
      return (proj, x, tokens, inF) => {
        if (!o.targets.includes(proj)) return;
        let acc = accOf.get(proj);
        if (!acc) {
          acc = byInput.get(x) ?? { sum: new Float32Array(inF * inF), n: 0, lastInput: null, inF };
          accOf.set(proj, acc);
        }
        byInput.set(x, acc);
        if (acc.lastInput === x) return; // a sibling projection already accumulated this very input
        acc.lastInput = x;
        timed(phases, 'hessian', () => accumulate(acc, x, tokens));
      };
    },
    compressLayer: (i, projections) => {
      const layer = model.layers[i];
      for (const p of o.targets.filter((t) => projections.includes(t))) {
        const acc = accOf.get(p);
        const m = layer.proj[p];
        if (!acc || !(m instanceof Linear))
          throw new Error(`quantize: layer ${i} ${p} is not a plain float projection (already quantised, or has an adapter?)`);
        const [out, inF] = m.weight.shape;
        const qw = gptq(m.weight.data, out, inF, acc, o, phases);
        // the float module keeps running the calibration on the dequantised weights (as AutoGPTQ, which writes them
        // into the layer); the INT4 module is installed once the layer is done
        installs.push([i, p, timed(phases, 'install', () => toQuantLinear(m, qw))]);
        modules++;
      }
      accOf = new Map(); // the layer's Hessians and factors (1.4 GB at the 7B shape) are not kept through its next forward
      byInput = new Map();
    },
    afterLayer: (i) => {
      for (const [l, p, q] of installs) if (l === i) model.layers[l].proj[p] = q;
      installs = installs.filter(([l]) => l !== i);
    },
    trueSequential: o.trueSequential ?? true,
    headInput: o.lmHead ? (x, tokens) => timed(phases, 'hessian', () => accumulate(head, x, tokens)) : undefined,
    onProgress: o.onProgress,
    stream: o.stream,
  });
  if (o.lmHead) quantizeLmHead(model, (w, out, inF) => gptq(w, out, inF, head, o, phases)); // (V, C) with H (C, C)
  model.config.quantization = {
    bits: o.bits,
    groupSize: o.groupSize,
    descAct: o.actOrder,
    sym: false,
    format: 'gptq',
    ...(o.lmHead ? { lmHead: true } : {}),
  };
  return {
    modules,
    seconds: (Date.now() - started) / 1000,
    phases: phases.wall,
    cpuSeconds: cpuSeconds() - cpuStarted,
    cpuPhases: phases.cpu,
  };
}
