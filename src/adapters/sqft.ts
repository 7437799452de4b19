/**
 * SQFT's adapter modes (spec.md §8): SparsePEFT masks the adapter's delta with the base's non-zero pattern;
 * QA-SparsePEFT additionally trains through the base's fixed INT4 quantiser. Both make the merged weight
 * keep the base's sparsity (and, for QA, its INT4 grid) exactly.
 */
import { Tensor } from '../tensor/index.ts';
import type { QuantParams } from '../tensor/index.ts';
import type { QuantizedWeight } from '../io/gptq-format.ts';
import type { LoraLinear } from './lora.ts';

/** M = (W ≠ 0) for every adapter's base weight. Returns the overall sparsity of the masked bases. */
export function enableSparsePeft(loras: LoraLinear[]): number {
  let zeros = 0, total = 0;
  for (const l of loras) {
    const w = l.base.weight;
    const m = new Float32Array(w.size);
    for (let k = 0; k < m.length; k++) {
      m[k] = w.data[k] !== 0 ? 1 : 0;
      if (!m[k]) zeros++;
    }
    total += m.length;
    l.sparseMask = new Tensor(m, w.shape);
  }
  return total ? zeros / total : 0;
}

/** The fixed quantiser of a GPTQ base weight, as fakeQuant takes it. */
export function quantParamsOf(qw: QuantizedWeight): QuantParams {
  return { scales: qw.scales, zeros: qw.zeros, gIdx: qw.gIdx, maxq: 2 ** qw.bits - 1, out: qw.out };
}

/**
 * QA-SparsePEFT: every adapter trains through its base's fixed quantiser — by default the GPTQ quantiser of
 * the (quantised) base it wraps; `quantOf` overrides it by PEFT module name (tests).
 */
export function enableQuantAware(loras: LoraLinear[], quantOf?: (moduleName: string) => QuantParams | undefined): void {
  for (const l of loras) {
    const q = quantOf ? quantOf(l.name) : l.baseQuant ? quantParamsOf(l.baseQuant) : undefined;
    if (!q) throw new Error(`--quantization-aware: ${l.name} has no INT4 quantiser in the base model (quantize the base with \`lonas quantize\` first)`);
    if (l.dropoutP > 0) throw new Error('--quantization-aware needs --dropout 0 (the adapter acts only through the quantised merged weight)');
    l.quant = q;
  }
}
