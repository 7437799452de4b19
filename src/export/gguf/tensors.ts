/**
 * The model's tensors as llama.cpp's HF converter (convert_hf_to_gguf.py) writes them: GGUF names, the
 * Q/K row order of llama.cpp's interleaved RoPE, and the storage type of each tensor.
 *  - names: the Llama weight table's GGUF column (models/llama/weights.ts), the one name table lonas has;
 *  - llama / deci: q_proj and k_proj rows are permuted per head from HF's rotate-half order to llama.cpp's
 *    pairwise order, row h·D + 2i + j ← h·D + j·D/2 + i (LlamaModel.permute); qwen2 (NEOX RoPE) keeps HF's order;
 *  - 1-D tensors (norms, biases) are F32; 2-D tensors take the requested type, except rows that are not a
 *    multiple of 32 values, which a block type cannot hold: they fall back to F16 (as the converter does)
 *    and are reported; GPTQ projections become Q4_1 (F16 when their rows are not whole blocks; see gptq.ts).
 */
import type { SafetensorsFile } from '../../io/safetensors.ts';
import { f32ToBf16 } from '../../io/safetensors.ts';
import type { LlamaConfig } from '../../models/llama/config.ts';
import { llamaWeightTable } from '../../models/llama/weights.ts';
import type { LlamaTensor } from '../../models/llama/weights.ts';
import { readGptqProjection } from '../../models/llama/gptq-io.ts';
import { dequantizeBlocks, isBlockType, quantizeBlocks, QK, toF16Bytes } from './quants.ts';
import { gptqTensor } from './gptq.ts';
import type { GgmlType, GgufTensor } from './writer.ts';

/** One line of the export report: a tensor not stored as requested, or stored with a measured error. */
export interface TensorNote {
  tensor: string;
  type: GgmlType;
  note: string /** max |stored − source| over the tensor, when measured */;
  maxError?: number;
}

export interface TensorPlan {
  tensors: GgufTensor[];
  notes: TensorNote[];
}

/** Row permutation of llama.cpp's converter for a (heads·D, …) q or k projection: new row → old row. */
export function ropeRowOrder(heads: number, headDim: number): Int32Array {
  const order = new Int32Array(heads * headDim),
    half = headDim / 2;
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++) for (let j = 0; j < 2; j++) order[h * headDim + 2 * i + j] = h * headDim + j * half + i;
  return order;
}

/** Rows of encoded bytes reordered: row r of the result is row order[r] of `bytes`. */
function permuteRows(bytes: Uint8Array, rows: number, order: Int32Array | null): Uint8Array {
  if (!order) return bytes;
  const rowBytes = bytes.length / rows,
    out = new Uint8Array(bytes.length);
  for (let r = 0; r < rows; r++) out.set(bytes.subarray(order[r] * rowBytes, (order[r] + 1) * rowBytes), r * rowBytes);
  return out;
}

function encodeFloat(x: Float32Array, type: GgmlType, cols: number): Uint8Array {
  if (type === 'F32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (type === 'F16') return toF16Bytes(x);
  if (type === 'BF16') {
    const h = new Uint16Array(x.length);
    f32ToBf16(x, h);
    return new Uint8Array(h.buffer);
  }
  if (isBlockType(type)) return quantizeBlocks(x, cols, type);
  throw new Error(`GGUF: no encoder for ${type}`);
}

/** q_proj / k_proj rows in llama.cpp's order when `permuteQk` (llama, deci), else null (qwen2's NEOX RoPE keeps HF's). */
function rowOrder(t: LlamaTensor, c: LlamaConfig, permuteQk: boolean): Int32Array | null {
  if (!permuteQk || t.layer === null || (t.proj !== 'q_proj' && t.proj !== 'k_proj')) return null;
  const l = c.layers[t.layer];
  return ropeRowOrder(t.proj === 'q_proj' ? l.numHeads : l.numKvHeads, c.headDim);
}

/**
 * The GGUF tensors of a model directory's weights, in the weight table's order (weights.ts: names, shapes,
 * which ones GPTQ may quantise). `where`: tensor name → open file, aliases included; `stored`: HF name →
 * the name it is stored under when that differs (checkpoint.ts storedNames: e.g. a tied model that keeps
 * only lm_head.weight, whose token_embd is then read from it). A tied model gets no `output` tensor:
 * llama.cpp reuses token_embd. Every stored tensor must map to a GGUF tensor: anything else is refused
 * rather than dropped.
 */
export function planTensors(
  where: Map<string, SafetensorsFile>,
  stored: ReadonlyMap<string, string>,
  c: LlamaConfig,
  type: GgmlType,
  permuteQk: boolean,
): TensorPlan {
  const notes: TensorNote[] = [];
  const tensors: GgufTensor[] = [];
  const used = new Set<string>();
  for (const t of llamaWeightTable(c).all) {
    const order = rowOrder(t, c, permuteQk);
    const module = t.name.replace(/\.weight$/, '');
    if (t.quantizable && where.has(`${module}.qweight`)) {
      if (!c.quantization)
        throw new Error(
          `'${module}.qweight' is stored but config.json has no quantization_config (add the GPTQ settings the checkpoint was made with)`,
        );
      const file = where.get(`${module}.qweight`)!;
      for (const part of ['qweight', 'qzeros', 'scales', 'g_idx']) used.add(`${module}.${part}`);
      const [out, inF] = t.shape;
      tensors.push({
        name: t.gguf,
        shape: t.shape,
        type: inF % QK ? 'F16' : 'Q4_1',
        bytes: () => {
          const r = gptqTensor(readGptqProjection(file, module, out, inF, c.quantization!));
          notes.push({ tensor: t.gguf, type: r.type, note: r.note, maxError: r.maxError });
          return permuteRows(r.bytes, out, order);
        },
      });
    } else if (where.has(t.name)) {
      const inFile = stored.get(t.name) ?? t.name;
      used.add(t.name).add(inFile);
      tensors.push(floatTensor(where.get(t.name)!, inFile, t, type, order, notes));
    } else {
      throw new Error(`tensor '${t.name}' is missing (config.json describes a model that has it; is the checkpoint complete?)`);
    }
  }
  const unknown = [...where.keys()].filter(
    (n) => !used.has(n) && !n.endsWith('rotary_emb.inv_freq') && !(n === 'lm_head.weight' && c.tieWordEmbeddings),
  );
  if (unknown.length)
    throw new Error(
      `tensors with no GGUF counterpart: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''} (lonas exports Llama-family decoders only)`,
    );
  return { tensors, notes };
}

/**
 * `inFile`: the name of table row `t` in `file`, whose shape must be the one config.json's sizes give
 * (llama.cpp would refuse the file at load otherwise); 1-D tensors are F32 whatever `requested` is.
 */
function floatTensor(
  file: SafetensorsFile,
  inFile: string,
  t: LlamaTensor,
  requested: GgmlType,
  order: Int32Array | null,
  notes: TensorNote[],
): GgufTensor {
  const name = t.gguf,
    shape = file.entry(inFile).shape;
  if (shape.join() !== t.shape.join())
    throw new Error(
      `${file.path}: tensor '${inFile}' has shape [${shape.join(', ')}], config.json's sizes give [${t.shape.join(', ')}] (the weights do not match config.json)`,
    );
  const cols = shape[shape.length - 1];
  let type: GgmlType = shape.length === 1 ? 'F32' : requested;
  if (isBlockType(type) && cols % QK) {
    notes.push({
      tensor: name,
      type: 'F16',
      note: `rows of ${cols} values are not a multiple of ${QK}: stored as F16 instead of ${type} (as llama.cpp's converter does)`,
    });
    type = 'F16';
  }
  return {
    name,
    shape,
    type,
    bytes: () => {
      const x = file.readFloat32(inFile).data;
      const bytes = encodeFloat(x, type, cols);
      if (isBlockType(type)) {
        const back = dequantizeBlocks(bytes, type);
        let worst = 0;
        for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(back[k] - x[k]));
        notes.push({ tensor: name, type, note: `quantized, max |error| ${worst.toExponential(2)}`, maxError: worst });
      }
      return permuteRows(bytes, shape[0], order);
    },
  };
}
