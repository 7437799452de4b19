/**
 * SQFT's adapter modes (spec.md §8) as LoRA variants: SparsePEFT masks the adapter's delta with the base's
 * non-zero pattern; QA-SparsePEFT additionally trains through the base's fixed INT4 quantiser. Both make the
 * merged weight keep the base's sparsity (and, for QA, its INT4 grid) exactly.
 */
import { Tensor, add, contiguous, fakeQuant, linear, matmul, mul, narrow, scale } from '../tensor/index.ts';
import type { QuantParams } from '../tensor/index.ts';
import { quantParamsOf } from '../nn/quantized-weight.ts';
import { PLAIN_LORA } from './lora.ts';
import type { AdapterMode, LoraLinear, LoraVariant } from './lora.ts';

/**
 * SparsePEFT: the base's non-zero pattern M (out, in) as 0/1. The adapter acts through a dense, masked delta
 * (o', i') = (s · B A) ⊙ M, so merging keeps the base's zeros exactly.
 */
export class SparsePeft implements LoraVariant {
  readonly mode: AdapterMode = 'sparse';

  constructor(public mask: Tensor) {}

  /** y = W x + (ΔW ⊙ M) dropout(x); the base alone at rank 0 */
  forward(l: LoraLinear, x: Tensor): Tensor {
    if (l.activeRank === 0) return l.baseForward(x);
    const a = l.activeA(),
      b = l.activeB(),
      xin = l.adapterInput(x);
    return add(l.baseForward(x), linear(xin, this.maskedDelta(l, a, b)));
  }

  maskDelta(l: LoraLinear, delta: Float32Array): void {
    const m = this.mask.data,
      o = l.activeOut,
      i = l.activeIn,
      inF = l.base.weightShape[1];
    for (let row = 0; row < o; row++) for (let col = 0; col < i; col++) delta[row * i + col] *= m[row * inF + col];
  }

  /** (s · B[:o', :r'] A[:r', :i']) ⊙ M[:o', :i'] from the active a (r', i') and b (o', r'), differentiable in A and B */
  protected maskedDelta(l: LoraLinear, a: Tensor, b: Tensor): Tensor {
    const delta = scale(matmul(contiguous(b), contiguous(a)), l.scaling);
    return mul(delta, isFull(l) ? this.mask : contiguous(narrow(narrow(this.mask, 0, 0, l.activeOut), 1, 0, l.activeIn)));
  }
}

/**
 * QA-SparsePEFT: the layer computes with fakeQuant(W + (s·B A) ⊙ M) — the weight an INT4 merge would store —
 * with a straight-through gradient, at every rank (rank 0 still runs the base through the quantiser).
 */
export class QaSparsePeft extends SparsePeft {
  override readonly mode: AdapterMode = 'qa';

  constructor(
    mask: Tensor,
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
    for (let k = 0; k < m.length; k++) if (!m[k]) zeros++;
    total += m.length;
    l.variant = new SparsePeft(new Tensor(m, l.base.weightShape));
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
