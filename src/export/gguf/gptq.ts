/**
 * A GPTQ INT4 projection as ggml Q4_1 blocks. GPTQ computes w = s·(q − z) per (group, output row); a Q4_1
 * block computes d·q + m over 32 consecutive inputs of one row. When every block lies inside one group
 * (32 divides the group size and, with act-order, g_idx keeps each block in one group) the mapping keeps
 * the codes and the scales exactly: q as is, d = s (already an F16 in GPTQ checkpoints), and m = −s·z,
 * which is the one rounding: m is stored as an IEEE half, so each weight moves by at most half an F16 ulp
 * of s·z (the measured maximum is reported). Otherwise the dequantized weights are requantized with
 * llama.cpp's Q4_1 quantizer and the added error is reported. Rows that are not whole 32-input blocks
 * cannot be Q4_1 at all: they are stored dequantized as F16 (reported too).
 */
import { dequantize } from '../../nn/quantized-weight.ts';
import type { QuantizedWeight } from '../../nn/quantized-weight.ts';
import { f32ToF16, f16ToF32 } from '../../io/safetensors.ts';
import { dequantizeBlocks, QK, quantizeBlocks, toF16Bytes } from './quants.ts';
import type { GgmlType } from './writer.ts';

export interface Q4_1Result {
  bytes: Uint8Array;
  exact: boolean;
  maxError: number;
  note: string;
}

/** True when each 32-input block of every row uses one GPTQ group. */
function blocksInsideGroups(qw: QuantizedWeight): boolean {
  if (qw.bits !== 4 || qw.inF % QK) return false;
  for (let b = 0; b < qw.inF; b += QK) for (let j = 1; j < QK; j++) if (qw.gIdx[b + j] !== qw.gIdx[b]) return false;
  return true;
}

const toHalf = (x: number): number => {
  const h = new Uint16Array(1);
  f32ToF16(Float32Array.of(x), h);
  return h[0];
};
const fromHalf = (h: number): number => {
  const f = new Float32Array(1);
  f16ToF32(Uint16Array.of(h), f);
  return f[0];
};

/** The GGUF storage of a GPTQ projection: Q4_1 (exact or requantized), or F16 when rows are not whole blocks. */
export function gptqTensor(qw: QuantizedWeight): { type: GgmlType; bytes: Uint8Array; note: string; maxError?: number } {
  if (qw.inF % QK) {
    return {
      type: 'F16',
      bytes: toF16Bytes(dequantize(qw)),
      note: `GPTQ rows of ${qw.inF} inputs are not whole ${QK}-value blocks: stored dequantized as F16`,
    };
  }
  return { type: 'Q4_1', ...gptqToQ4_1(qw) };
}

export function gptqToQ4_1(qw: QuantizedWeight): Q4_1Result {
  const reference = dequantize(qw);
  if (!blocksInsideGroups(qw)) {
    const bytes = quantizeBlocks(reference, qw.inF, 'Q4_1');
    const maxError = maxDiff(dequantizeBlocks(bytes, 'Q4_1'), reference);
    const why =
      qw.bits !== 4
        ? `${qw.bits}-bit codes`
        : `groups (size ${qw.groupSize}${qw.groupSize % QK ? '' : ', act-order g_idx'}) that split 32-input blocks`;
    return { bytes, exact: false, maxError, note: `GPTQ ${why}: requantized to Q4_1, added max |error| ${maxError.toExponential(2)}` };
  }
  const { out, inF, q, scales, zeros, gIdx } = qw;
  const perRow = inF / QK;
  const bytes = new Uint8Array(out * perRow * 20);
  const view = new DataView(bytes.buffer);
  for (let o = 0; o < out; o++) {
    for (let b = 0; b < perRow; b++) {
      const g = gIdx[b * QK] * out + o,
        at = (o * perRow + b) * 20;
      view.setUint16(at, toHalf(scales[g]), true);
      view.setUint16(at + 2, toHalf(-scales[g] * zeros[g]), true);
      const codes = o * inF + b * QK;
      for (let j = 0; j < QK / 2; j++) view.setUint8(at + 4 + j, q[codes + j] | (q[codes + j + QK / 2] << 4));
    }
  }
  const maxError = maxDiff(dequantizeBlocks(bytes, 'Q4_1'), reference);
  const scaleExact = scales.every((s) => fromHalf(toHalf(s)) === s);
  return {
    bytes,
    exact: true,
    maxError,
    note: `GPTQ codes${scaleExact ? ' and scales' : ''} kept exactly as Q4_1${scaleExact ? '' : ' (scales rounded to F16)'}; offset −s·z rounded to F16: max |error| ${maxError.toExponential(2)}`,
  };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}
