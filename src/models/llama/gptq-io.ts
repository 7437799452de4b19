/** Reading and writing GPTQ-quantised projections (qweight, qzeros, scales, g_idx) in AutoGPTQ's layout. */
import type { SafetensorsFile, TensorSpec, TensorToWrite } from '../../io/safetensors.ts';
import { f32ToF16 } from '../../io/safetensors.ts';
import { packQweight, packQzeros, packedWords, unpackQweight, unpackQzeros } from '../../io/gptq-format.ts';
import type { QuantGrid, QuantizedWeight } from '../../nn/quantized-weight.ts';
import type { GptqConfig } from './config.ts';
import { PROJECTIONS, projectionInBlock, projectionWeightName } from './weights.ts';

/** `prefix` is the module name, e.g. model.layers.0.self_attn.q_proj. */
export function readGptqProjection(file: SafetensorsFile, prefix: string, out: number, inF: number, q: GptqConfig): QuantizedWeight {
  needShape(file, prefix, 'qweight', [packedWords(inF, q.bits), out], out, inF, q);
  const grid = readGptqGrid(file, prefix, out, inF, q);
  return { ...grid, q: unpackQweight(file.readInt32(`${prefix}.qweight`).data, out, inF, q.bits) };
}

/** Refuses `<prefix>.<part>` unless its shape is `shape` (the error names the layer's bits, sizes and group size). */
function needShape(file: SafetensorsFile, prefix: string, part: string, shape: number[], out: number, inF: number, q: GptqConfig): void {
  const gs = q.groupSize > 0 ? q.groupSize : inF;
  const e = file.entry(`${prefix}.${part}`);
  if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i]))
    throw new Error(
      `${file.path}: '${prefix}.${part}' has shape [${e.shape.join(', ')}], a ${q.bits}-bit (${out}, ${inF}) layer with group size ${gs} needs [${shape.join(', ')}]`,
    );
}

/** A GPTQ projection's grid (qzeros, scales, g_idx) without reading its codes. */
export function readGptqGrid(file: SafetensorsFile, prefix: string, out: number, inF: number, q: GptqConfig): QuantGrid {
  const gs = q.groupSize > 0 ? q.groupSize : inF;
  const groups = Math.ceil(inF / gs);
  const need = (name: string, shape: number[]) => needShape(file, prefix, name, shape, out, inF, q);
  need('qzeros', [groups, packedWords(out, q.bits)]);
  need('scales', [groups, out]);
  const zeros = unpackQzeros(file.readInt32(`${prefix}.qzeros`).data, groups, out, q.bits, q.format);
  const scales = file.readFloat32(`${prefix}.scales`).data;
  const gIdx = file.has(`${prefix}.g_idx`)
    ? file.readInt32(`${prefix}.g_idx`).data
    : Int32Array.from({ length: inF }, (_, j) => Math.floor(j / gs));
  for (let j = 0; j < inF; j++)
    if (gIdx[j] < 0 || gIdx[j] >= groups)
      throw new Error(`${file.path}: '${prefix}.g_idx'[${j}] = ${gIdx[j]} is not a group (0..${groups - 1})`);
  return { out, inF, bits: q.bits, groupSize: gs, scales, zeros, gIdx };
}

/** The names, dtypes and shapes gptqTensors writes for a grid of `groups` groups (planned before the codes exist). */
export function gptqTensorPlan(prefix: string, grid: Pick<QuantGrid, 'out' | 'inF' | 'bits'>, groups: number): Record<string, TensorSpec> {
  return {
    [`${prefix}.qweight`]: { dtype: 'I32', shape: [packedWords(grid.inF, grid.bits), grid.out] },
    [`${prefix}.qzeros`]: { dtype: 'I32', shape: [groups, packedWords(grid.out, grid.bits)] },
    [`${prefix}.scales`]: { dtype: 'F16', shape: [groups, grid.out] },
    [`${prefix}.g_idx`]: { dtype: 'I32', shape: [grid.inF] },
  };
}

/** The tensors of one quantised projection, scales stored as F16 as GPTQ checkpoints do. */
export function gptqTensors(prefix: string, qw: QuantizedWeight, format: GptqConfig['format']): Record<string, TensorToWrite> {
  const groups = qw.scales.length / qw.out;
  const plan = gptqTensorPlan(prefix, qw, groups);
  const half = new Uint16Array(qw.scales.length);
  f32ToF16(qw.scales, half);
  const data = [packQweight(qw.q, qw.out, qw.inF, qw.bits), packQzeros(qw.zeros, groups, qw.out, qw.bits, format), half, qw.gIdx];
  return Object.fromEntries(Object.entries(plan).map(([name, t], k) => [name, { ...t, data: data[k] }]));
}

/** The zero-point format a checkpoint needs: v1 cannot store a zero of 0 (it writes zero − 1). */
export function formatFor(weights: Iterable<Pick<QuantGrid, 'zeros'>>): GptqConfig['format'] {
  for (const w of weights) for (const z of w.zeros) if (z === 0) return 'gptq_v2';
  return 'gptq';
}

/**
 * The quantization_config of the modules written (module name → weight; lm_head for the head) in a model of
 * `layers` layers: null without any; else their common bits and group size (a per-channel grid, group size =
 * in, keeps the config's group_size -1), desc_act and sym as `declared` (the model's config) says, `format`,
 * lm_head exactly when the head is among them, and the GPTQ projections of a layer when not all are
 * (transformers' modules_in_block_to_quantize). What one config cannot describe is an error: modules on
 * different grids, layers with different GPTQ projections, or a GPTQ head over float projections.
 */
export function gptqConfigFor(
  quantized: Map<string, Pick<QuantGrid, 'bits' | 'groupSize' | 'inF' | 'gIdx'>>,
  layers: number,
  format: GptqConfig['format'],
  declared: GptqConfig | null | undefined,
): GptqConfig | null {
  const all = [...quantized];
  if (!all.length) return null;
  const [firstName, first] = all[0];
  const perChannel = declared ? declared.groupSize <= 0 : false;
  const groupSize = perChannel ? declared!.groupSize : first.groupSize;
  const cannot = (what: string) => new Error(`saveModelDir: ${what}; one quantization_config cannot describe that (dequantise the model)`);
  for (const [name, w] of all) {
    const sameGroups = perChannel ? w.groupSize >= w.inF : w.groupSize === groupSize;
    if (w.bits !== first.bits || !sameGroups)
      throw cannot(
        `${name} is ${w.bits}-bit with group size ${w.groupSize}, ${firstName} ${first.bits}-bit with group size ${first.groupSize}`,
      );
  }
  const inLayer = (l: number) => PROJECTIONS.filter((p) => quantized.has(projectionWeightName(l, p)));
  const block = inLayer(0);
  for (let l = 1; l < layers; l++)
    if (inLayer(l).join() !== block.join())
      throw cannot(`layer ${l} has GPTQ projections [${inLayer(l).join(', ')}], layer 0 [${block.join(', ')}]`);
  if (!block.length) throw cannot('the LM head is GPTQ but no projection is');
  return {
    bits: first.bits,
    groupSize,
    descAct: declared?.descAct ?? all.some(([, w]) => w.gIdx.some((g, j) => g !== Math.floor(j / w.groupSize))),
    sym: declared?.sym ?? false,
    format,
    lmHead: quantized.has('lm_head'),
    ...(block.length < PROJECTIONS.length ? { modulesInBlock: block.map(projectionInBlock) } : {}),
  };
}
