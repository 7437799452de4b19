/**
 * SQFT's adapter modes (spec.md §8) as LoRA variants: SparsePEFT masks the adapter's delta with the base's
 * non-zero pattern; QA-SparsePEFT additionally trains through the base's fixed INT4 quantiser. Both make the
 * merged weight keep the base's sparsity (and, for QA, its INT4 grid) exactly.
 */
import { add, contiguous, fakeQuant, linear, maskMul, matmul, narrow, scale } from '../tensor/index.ts';
import type { BitMask, QuantParams, Tensor } from '../tensor/index.ts';
import { dequantize, noRequantStats, quantParamsOf, requantize } from '../nn/quantized-weight.ts';
import { PLAIN_LORA } from './lora.ts';
import type { AdapterMode, LoraLinear, LoraVariant } from './lora.ts';

/**
 * SparsePEFT: the base's non-zero pattern M (out, in) as one bit per weight (0.81 GB for Llama-2-7B, where a
 * float32 mask took 26 GB). The adapter acts through a dense, masked delta (o', i') = (s · B A) ⊙ M, so merging
 * keeps the base's zeros exactly.
 */
export class SparsePeft implements LoraVariant {
  readonly mode: AdapterMode = 'sparse';

  /** mask: (out·in) row-major, 1 where the base weight is non-zero */
  constructor(public mask: BitMask) {}

  /** y = W x + (ΔW ⊙ M) dropout(x); the base alone at rank 0 */
  forward(l: LoraLinear, x: Tensor): Tensor {
    if (l.activeRank === 0) return l.baseForward(x);
    const a = l.activeA(),
      b = l.activeB(),
      xin = l.adapterInput(x);
    return add(l.baseForward(x), linear(xin, this.maskedDelta(l, a, b)));
  }

  maskDelta(l: LoraLinear, delta: Float32Array): void {
    const m = this.mask,
      o = l.activeOut,
      i = l.activeIn,
      inF = l.base.weightShape[1];
    for (let row = 0; row < o; row++) for (let col = 0; col < i; col++) delta[row * i + col] *= m.get(row * inF + col);
  }

  /** (s · B[:o', :r'] A[:r', :i']) ⊙ M[:o', :i'] from the active a (r', i') and b (o', r'), differentiable in A and B */
  protected maskedDelta(l: LoraLinear, a: Tensor, b: Tensor): Tensor {
    const delta = scale(matmul(contiguous(b), contiguous(a)), l.scaling);
    return maskMul(delta, this.mask, l.base.weightShape[1]);
  }
}

/**
 * QA-SparsePEFT: the layer computes with fakeQuant(W + (s·B A) ⊙ M) — the weight an INT4 merge would store —
 * with a straight-through gradient, at every rank (rank 0 still runs the base through the quantiser).
 */
export class QaSparsePeft extends SparsePeft {
  override readonly mode: AdapterMode = 'qa';

  constructor(
    mask: BitMask,
    readonly quant: QuantParams,
  ) {
    super(mask);
  }

  override forward(l: LoraLinear, x: Tensor): Tensor {
    const a = l.activeA(),
      b = l.activeB();
    if (l.adapterInput(x) !== x)
      throw new Error(
        `LoRA ${l.name}: quantisation-aware training needs --dropout 0 (the quantised merged weight has no separate adapter path)`,
      );
    const w = l.base.weight;
    const merged = add(contiguous(isFull(l) ? w : narrow(narrow(w, 0, 0, l.activeOut), 1, 0, l.activeIn)), this.maskedDelta(l, a, b));
    const bias = l.base.bias ? narrow(l.base.bias, 0, 0, l.activeOut) : null;
    return linear(x, fakeQuant(merged, this.quant), bias);
  }
}

function isFull(l: LoraLinear): boolean {
  const [out, inF] = l.base.weightShape;
  return l.activeOut === out && l.activeIn === inF;
}

/** M = (W ≠ 0) for every adapter's base weight. Returns the overall sparsity of the masked bases. */
export function enableSparsePeft(loras: LoraLinear[]): number {
  let zeros = 0,
    total = 0;
  for (const l of loras) {
    const m = l.base.weightStore.nonZeroMask(); // from the stored form: a bf16 base stays bf16
    for (let k = 0; k < m.length; k++) if (!m.get(k)) zeros++;
    total += m.length;
    l.variant = new SparsePeft(m);
  }
  return total ? zeros / total : 0;
}

/**
 * QA-SparsePEFT on adapters that are already SparsePEFT (enableSparsePeft): every adapter trains through its
 * base's fixed quantiser — by default the GPTQ quantiser of the (quantised) base it wraps; `quantOf` overrides
 * it by PEFT module name (tests).
 */
export function enableQuantAware(loras: LoraLinear[], quantOf?: (moduleName: string) => QuantParams | undefined): void {
  for (const l of loras) {
    const q = quantOf ? quantOf(l.name) : l.baseQuant ? quantParamsOf(l.baseQuant) : undefined;
    if (!q)
      throw new Error(
        `--quantization-aware: ${l.name} has no INT4 quantiser in the base model (quantize the base with \`lonas quantize\` first)`,
      );
    if (l.dropoutP > 0)
      throw new Error('--quantization-aware needs --dropout 0 (the adapter acts only through the quantised merged weight)');
    if (!(l.variant instanceof SparsePeft)) {
      const what = l.variant === PLAIN_LORA ? 'plain LoRA' : l.variant.mode;
      throw new Error(
        `--quantization-aware: ${l.name} is a ${what} adapter; enable SparsePEFT (enableSparsePeft) first, QA-SparsePEFT masks its delta the same way`,
      );
    }
    l.variant = new QaSparsePeft(l.variant.mask, q);
  }
}

/** |ΔW| in half quantisation steps, binned by 1/16 octave from 2⁻³² up (bin 0 holds zero updates). */
const BINS_PER_OCTAVE = 16,
  LOWEST_OCTAVE = -32,
  OCTAVES = 48;

/**
 * What the INT4 merge of QA-SparsePEFT adapters (at full size) would store: of `codes` base codes,
 * `codesChanged` move (requantize, as `lonas merge` writes them). The update in half quantisation steps,
 * |ΔW| / (scale/2), says why: a code moves only where it passes 1 (the base weights sit on the grid).
 * `p99HalfSteps` is the value the largest 1 % of the updates reach (approximate: 1/16 octave bins).
 */
export interface QaCodeReport {
  codesChanged: number;
  codes: number;
  maxHalfSteps: number;
  p99HalfSteps: number;
}

export function qaCodeChanges(loras: LoraLinear[]): QaCodeReport | null {
  const qa = loras.filter((l) => l.variant instanceof QaSparsePeft && l.baseQuant);
  if (!qa.length) return null;
  const stats = noRequantStats();
  const hist = new Float64Array(1 + BINS_PER_OCTAVE * OCTAVES);
  let maxHalfSteps = 0;
  for (const l of qa) {
    const grid = l.baseQuant!;
    const active = [l.activeRank, l.activeOut, l.activeIn] as const;
    l.resetActive(); // the full-size merge, as `lonas merge` at the maximal sub-network
    const delta = l.deltaWeight();
    [l.activeRank, l.activeOut, l.activeIn] = active;
    const merged = dequantize(grid);
    for (let o = 0; o < grid.out; o++)
      for (let j = 0; j < grid.inF; j++) {
        const k = o * grid.inF + j,
          half = Math.abs(delta[k]) / (grid.scales[grid.gIdx[j] * grid.out + o] / 2);
        merged[k] += delta[k];
        maxHalfSteps = Math.max(maxHalfSteps, half);
        const bin = half > 0 ? Math.floor((Math.log2(half) - LOWEST_OCTAVE) * BINS_PER_OCTAVE) : -1;
        hist[Math.min(hist.length - 1, Math.max(0, bin + 1))]++;
      }
    requantize(grid, merged, stats);
  }
  // the lower edge of the bin where the top 1 % begins
  let above = 0,
    b = hist.length - 1;
  for (; b > 0 && above + hist[b] <= 0.01 * stats.weights; b--) above += hist[b];
  const p99HalfSteps = b > 0 ? Math.min(maxHalfSteps, 2 ** ((b - 1) / BINS_PER_OCTAVE + LOWEST_OCTAVE)) : 0;
  return { codesChanged: stats.codesChanged, codes: stats.weights, maxHalfSteps, p99HalfSteps };
}

/**
 * A learning rate for a QA run that moved no code or almost none (at most 0.1 %): the one that would bring
 * the top 1 % of the updates to half a step, `lr / p99HalfSteps`, on the grounds that under Adam the
 * adapter's update grows about in proportion to the learning rate. Null when codes did move, or nothing was learnt.
 */
export function suggestQaLr(r: QaCodeReport, lr: number): number | null {
  if (r.codesChanged > 0.001 * r.codes || !(r.p99HalfSteps > 0)) return null;
  return Number((lr / r.p99HalfSteps).toPrecision(2));
}
