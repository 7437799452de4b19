/**
 * GPTQ over a whole model with the shared layer-wise calibration: for each layer, the Hessians of its
 * projections' inputs are accumulated (H = 2/N Σ_sequences Σ_tokens x xᵀ, as AutoGPTQ's add_batch), the
 * projections are quantised, their float weights replaced by the dequantised ones (scales rounded to f16 as
 * the checkpoint stores them, so memory and file agree), and the next layer sees the quantised outputs.
 * Projections fed the same input (q/k/v, gate/up) share one Hessian and its factorisation.
 */
import { kernels } from '../kernels/index.ts';
import { f32ToF16, f16ToF32 } from '../io/safetensors.ts';
import { dequantize } from '../io/gptq-format.ts';
import type { QuantizedWeight } from '../io/gptq-format.ts';
import { Linear } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import { calibrateLayerwise } from './calibrate.ts';
import { gptqQuantize, prepareHessian } from './gptq.ts';
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
  onProgress?: (layer: number, layers: number) => void;
}

interface HessianAcc { sum: Float32Array; n: number; lastInput: Float32Array | null; inF: number; prepared?: PreparedHessian }

/** Rounds scales to float16 precision (what a GPTQ checkpoint stores). */
function roundScalesToF16(qw: QuantizedWeight): void {
  const h = new Uint16Array(qw.scales.length);
  f32ToF16(qw.scales, h);
  f16ToF32(h, qw.scales);
}

export function quantizeModel(model: LlamaModel, samples: Int32Array[], o: QuantizeOptions): { modules: number; seconds: number } {
  const started = Date.now();
  let accOf = new Map<ProjectionName, HessianAcc>();
  let byInput = new Map<Float32Array, HessianAcc>();
  let modules = 0;
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
        acc.n += 1;
        // Σ xᵀx over this sequence's tokens: (in, in) += xᵀ (in, T) · x (T, in)
        kernels().gemm(true, false, inF, inF, tokens, 1, x, 0, inF, x, 0, inF, 1, acc.sum, 0, inF);
      };
    },
    compressLayer: (i) => {
      const layer = model.layers[i];
      for (const p of o.targets) {
        const acc = accOf.get(p);
        const m = layer.proj[p];
        if (!acc || !(m instanceof Linear)) throw new Error(`quantize: layer ${i} ${p} is not a plain float projection (already quantised, or has an adapter?)`);
        acc.prepared ??= prepareHessian(Float64Array.from(acc.sum, (v) => (2 * v) / acc.n), acc.inF, o.actOrder, o.percDamp);
        const w = m.weight;
        const [out, inF] = w.shape;
        const hasZeros = w.data.some((v) => v === 0);
        const qw = gptqQuantize(w.data, out, inF, acc.prepared, { bits: o.bits, groupSize: o.groupSize, actOrder: o.actOrder, blockSize: o.blockSize, keepZeros: o.keepZeros ?? hasZeros });
        roundScalesToF16(qw);
        w.data.set(dequantize(qw));
        layer.proj[p] = new QuantLinear(m, qw);
        modules++;
      }
    },
    onProgress: o.onProgress,
  });
  model.config.quantization = { bits: o.bits, groupSize: o.groupSize, descAct: o.actOrder, sym: false, format: 'gptq' };
  return { modules, seconds: (Date.now() - started) / 1000 };
}
