/**
 * The model's tensors as llama.cpp's HF converter (convert_hf_to_gguf.py) writes them: GGUF names, the
 * Q/K row order of llama.cpp's interleaved RoPE, and the storage type of each tensor.
 *  - names: the table below (HF module → GGUF module; `.weight` / `.bias` kept);
 *  - llama / deci: q_proj and k_proj rows are permuted per head from HF's rotate-half order to llama.cpp's
 *    pairwise order, row h·D + 2i + j ← h·D + j·D/2 + i (LlamaModel.permute); qwen2 (NEOX RoPE) keeps HF's order;
 *  - 1-D tensors (norms, biases) are F32; 2-D tensors take the requested type, except rows that are not a
 *    multiple of 32 values, which a block type cannot hold: they fall back to F16 (as the converter does)
 *    and are reported; GPTQ projections become Q4_1 (F16 when their rows are not whole blocks; see gptq.ts).
 */
import type { SafetensorsFile } from '../../io/safetensors.ts';
import { f32ToBf16 } from '../../io/safetensors.ts';
import type { LlamaConfig } from '../../models/llama/config.ts';
import { readGptqProjection } from '../../models/llama/gptq-io.ts';
import { dequantizeBlocks, isBlockType, quantizeBlocks, QK, toF16Bytes } from './quants.ts';
import { gptqTensor } from './gptq.ts';
import type { GgmlType, GgufTensor } from './writer.ts';

/** HF module → GGUF module, the whole mapping lonas needs (llama.cpp's gguf-py tensor_mapping.py). */
export const GGUF_MODULES: Record<string, string> = {
  'model.embed_tokens': 'token_embd',
  'model.norm': 'output_norm',
  lm_head: 'output',
  'model.layers.{i}.input_layernorm': 'blk.{i}.attn_norm',
  'model.layers.{i}.self_attn.q_proj': 'blk.{i}.attn_q',
  'model.layers.{i}.self_attn.k_proj': 'blk.{i}.attn_k',
  'model.layers.{i}.self_attn.v_proj': 'blk.{i}.attn_v',
  'model.layers.{i}.self_attn.o_proj': 'blk.{i}.attn_output',
  'model.layers.{i}.post_attention_layernorm': 'blk.{i}.ffn_norm',
  'model.layers.{i}.mlp.gate_proj': 'blk.{i}.ffn_gate',
  'model.layers.{i}.mlp.up_proj': 'blk.{i}.ffn_up',
  'model.layers.{i}.mlp.down_proj': 'blk.{i}.ffn_down',
};

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

/** Every HF module of a model with this config, with its GGUF name and q/k permutation. */
function modules(c: LlamaConfig, permuteQk: boolean): { hf: string; gguf: string; order: Int32Array | null }[] {
  const out: { hf: string; gguf: string; order: Int32Array | null }[] = [];
  for (const [hf, gguf] of Object.entries(GGUF_MODULES)) {
    if (!hf.includes('{i}')) {
      out.push({ hf, gguf, order: null });
      continue;
    }
    c.layers.forEach((l, i) => {
      const heads = hf.endsWith('q_proj') ? l.numHeads : hf.endsWith('k_proj') ? l.numKvHeads : 0;
      out.push({
        hf: hf.replace('{i}', `${i}`),
        gguf: gguf.replace('{i}', `${i}`),
        order: permuteQk && heads ? ropeRowOrder(heads, c.headDim) : null,
      });
    });
  }
  return out;
}

/**
 * The GGUF tensors of a model directory's weights (`where`: tensor name → open file), in llama.cpp's order.
 * Every stored tensor must map to a GGUF tensor: anything else is refused rather than dropped.
 */
export function planTensors(where: Map<string, SafetensorsFile>, c: LlamaConfig, type: GgmlType, permuteQk: boolean): TensorPlan {
  const notes: TensorNote[] = [];
  const tensors: GgufTensor[] = [];
  const used = new Set<string>();
  for (const m of modules(c, permuteQk)) {
    if (m.hf === 'lm_head' && c.tieWordEmbeddings) continue; // llama.cpp reuses token_embd
    const quantized = where.has(`${m.hf}.qweight`);
    if (quantized) {
      if (!c.quantization)
        throw new Error(
          `'${m.hf}.qweight' is stored but config.json has no quantization_config (add the GPTQ settings the checkpoint was made with)`,
        );
      const file = where.get(`${m.hf}.qweight`)!;
      for (const t of ['qweight', 'qzeros', 'scales', 'g_idx']) used.add(`${m.hf}.${t}`);
      const scales = file.entry(`${m.hf}.scales`);
      const out = scales.shape[1],
        inF = rowLength(m.hf, c);
      tensors.push({
        name: `${m.gguf}.weight`,
        shape: [out, inF],
        type: inF % QK ? 'F16' : 'Q4_1',
        bytes: () => {
          const r = gptqTensor(readGptqProjection(file, m.hf, out, inF, c.quantization!));
          notes.push({ tensor: `${m.gguf}.weight`, type: r.type, note: r.note, maxError: r.maxError });
          return permuteRows(r.bytes, out, m.order);
        },
      });
    } else if (where.has(`${m.hf}.weight`)) {
      used.add(`${m.hf}.weight`);
      tensors.push(floatTensor(where.get(`${m.hf}.weight`)!, `${m.hf}.weight`, `${m.gguf}.weight`, type, m.order, notes));
    } else {
      throw new Error(`tensor '${m.hf}.weight' is missing (config.json describes a model that has it; is the checkpoint complete?)`);
    }
    if (where.has(`${m.hf}.bias`)) {
      used.add(`${m.hf}.bias`);
      tensors.push(floatTensor(where.get(`${m.hf}.bias`)!, `${m.hf}.bias`, `${m.gguf}.bias`, 'F32', m.order, notes));
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

/** Input width of a module (GPTQ's packed qweight does not say it exactly). */
function rowLength(hf: string, c: LlamaConfig): number {
  const layer = /layers\.(\d+)\./.exec(hf);
  if (!layer) return c.hiddenSize;
  const l = c.layers[Number(layer[1])];
  return hf.endsWith('o_proj') ? l.numHeads * c.headDim : hf.endsWith('down_proj') ? l.intermediateSize : c.hiddenSize;
}

function floatTensor(
  file: SafetensorsFile,
  hfName: string,
  name: string,
  requested: GgmlType,
  order: Int32Array | null,
  notes: TensorNote[],
): GgufTensor {
  const shape = file.entry(hfName).shape;
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
      const x = file.readFloat32(hfName).data;
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
