/**
 * Compressed variants of a model for speed benchmarks, built the cheap way (no calibration) but into the
 * very formats the real tools write, and loaded back through the path `lonas generate` uses:
 *
 *  - int4:   every projection round-to-nearest INT4, group 128 (rtnQuantize: GPTQ's quantiser without the
 *            Hessian update; scales rounded to float16 as a GPTQ checkpoint stores them), swapped to
 *            QuantLinear as `lonas quantize` does, saved as an AutoGPTQ checkpoint (qweight/qzeros/scales/
 *            g_idx) by saveModelDir.
 *  - sparse: every projection magnitude-pruned to 50% per row (pruneModel, method magnitude: `lonas
 *            sparsify --method magnitude`), saved as a plain float checkpoint with the zeros in it.
 *
 *  - int4_bf16: the int4 model with everything that is not INT4 (embedding = tied LM head, norms) stored
 *            as BF16, which the loader keeps in bfloat16 — what `lonas extract --dtype bf16` writes for a
 *            GPTQ model. It shows what the float32 LM head costs the int4 model.
 *  - int4_head: the int4 model with the LM head RTN-INT4 too (group 128), untied from the embedding, which
 *            stays float32 — what `lonas quantize --lm-head` writes (quantizeLmHead, quantization_config
 *            "lm_head": true, lm_head.qweight/qzeros/scales/g_idx), loaded back with a QuantLinear head.
 *
 * Loading is `loadWithAdapter(dir)` (src/nas/load.ts): loadLlama turns the GPTQ projections (and a GPTQ LM
 * head) into QuantLinear (INT4 kernel at inference), keeps BF16-stored weights in bfloat16, and
 * useSparseKernels swaps projections with ≥ 50% zeros to SparseLinear. The embedding and the LM head (tied
 * to it in the 135M shape) are not projections: they stay float32 in f32 / int4 / sparse, and only
 * int4_head quantises the head (`describeLayers` reports what was compressed).
 */
import { rtnQuantize } from '../src/compress/gptq.ts';
import { quantizeLmHead, toQuantLinear } from '../src/compress/quantize.ts';
import { pruneModel } from '../src/compress/prune.ts';
import { loadLlama, saveModelDir } from '../src/models/llama/checkpoint.ts';
import { PROJECTIONS } from '../src/models/llama/model.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { Linear } from '../src/nn/modules.ts';
import { QuantLinear } from '../src/nn/quant-linear.ts';
import { SparseLinear } from '../src/nn/sparse-linear.ts';
import { loadWithAdapter } from '../src/nas/load.ts';

export type Format = 'f32' | 'int4' | 'sparse' | 'int4_bf16' | 'int4_head';
export const FORMATS: readonly Format[] = ['f32', 'int4', 'sparse', 'int4_bf16', 'int4_head'];
export const INT4_GROUP = 128;
export const SPARSITY = 0.5;

/** Compresses every projection of a float32 `model` in place: INT4 (GPTQ layout; int4_head: the LM head too) or 50% sparse. */
export function compressInPlace(model: LlamaModel, format: 'int4' | 'int4_head' | 'sparse'): void {
  if (format === 'sparse') {
    pruneModel(model, [], { method: 'magnitude', sparsity: SPARSITY, targets: [...PROJECTIONS] });
    return;
  }
  const rtn = (w: ArrayLike<number>, out: number, inF: number) => rtnQuantize(w, out, inF, 4, INT4_GROUP);
  for (const layer of model.layers) {
    for (const p of PROJECTIONS) {
      const m = layer.proj[p];
      if (!(m instanceof Linear)) throw new Error(`compressInPlace: ${p} is not a plain float projection`);
      const [out, inF] = m.weight.shape;
      layer.proj[p] = toQuantLinear(m, rtn(m.weight.data, out, inF));
    }
  }
  if (format === 'int4_head') quantizeLmHead(model, rtn);
  model.config.quantization = {
    bits: 4,
    groupSize: INT4_GROUP,
    descAct: false,
    sym: false,
    format: 'gptq',
    ...(format === 'int4_head' ? { lmHead: true } : {}),
  };
}

/**
 * Writes `format` of the float model in `f32Dir` to `outDir` (f32: `f32Dir` itself is the model) and
 * returns the directory to load. The float model is re-read, so `f32Dir` stays the common source.
 */
export function writeCompressed(f32Dir: string, format: Format, outDir: string): string {
  if (format === 'f32') return f32Dir;
  const model = loadLlama(f32Dir, { weights: 'f32' });
  compressInPlace(model, format === 'int4_bf16' ? 'int4' : format);
  saveModelDir(outDir, model, { overwrite: true, dtype: format === 'int4_bf16' ? 'BF16' : 'F32' });
  return outDir;
}

/** The model in `dir` as `lonas generate` loads it (no adapter). */
export function loadForInference(dir: string): LlamaModel {
  return loadWithAdapter(dir).model;
}

export interface LayerReport {
  /** projections by inference module: QuantLinear (INT4 kernel), SparseLinear (sparse kernel), Linear (f32) */
  projections: Record<string, number>;
  /** parameters in projections, and in the embedding / LM head (tied: counted once; untied: each V × C) */
  projection_params: number;
  embedding_params: number;
  lm_head: string;
  /** bytes one decode step streams: projections in their format, the LM head matrix, the embedding row aside */
  decode_weight_bytes: number;
  lm_head_share_of_decode_bytes: number;
}

/** What is compressed in a loaded model, and the weight bytes a decode step reads (reads no bf16 weight as float32). */
export function describeLayers(model: LlamaModel): LayerReport {
  const projections: Record<string, number> = {};
  let params = 0,
    bytes = 0;
  for (const layer of model.layers) {
    for (const p of PROJECTIONS) {
      const m = layer.proj[p];
      const base = m instanceof Linear ? m : (m as { base?: unknown }).base;
      if (!(base instanceof Linear)) throw new Error(`describeLayers: ${m.constructor.name} has no base Linear`);
      const kind = m.constructor.name + (base.weightStore.bf16 && !(m instanceof QuantLinear) ? ' (bf16)' : '');
      projections[kind] = (projections[kind] ?? 0) + 1;
      const [out, inF] = base.weightShape;
      params += out * inF;
      bytes += projectionBytes(m, base, out, inF);
    }
  }
  const c = model.config;
  const head = model.lmHead;
  const headBase = head instanceof Linear ? head : head instanceof QuantLinear ? head.base : null;
  if (!headBase) throw new Error(`describeLayers: LM head ${head.constructor.name} is neither a Linear nor a QuantLinear`);
  const store = headBase.weightStore;
  const [V, C] = store.shape;
  const headBytes = projectionBytes(head, headBase, V, C);
  const tied = store === model.embed.weightStore;
  return {
    projections,
    projection_params: params,
    embedding_params: c.vocabSize * c.hiddenSize,
    lm_head:
      head instanceof QuantLinear
        ? `INT${head.qw.bits} (GPTQ layout, group ${head.qw.groupSize}), untied from the float32 embedding: ${V * C} params, QuantLinear (INT4 kernel)`
        : `${store.bf16 ? 'bfloat16' : 'float32'}${tied ? ', tied to the embedding' : ''}: ${V * C} params, not a projection, so not quantised or pruned`,
    decode_weight_bytes: bytes + headBytes,
    lm_head_share_of_decode_bytes: Math.round((1000 * headBytes) / (bytes + headBytes)) / 1000,
  };
}

/** Bytes the inference kernel reads for one projection (INT4: codes + f32 scales/zeros; sparse: mask + values + row offsets). */
function projectionBytes(m: unknown, base: Linear, out: number, inF: number): number {
  if (m instanceof QuantLinear) {
    const groups = Math.ceil(inF / m.qw.groupSize);
    return (out * inF) / 2 + 2 * 4 * groups * out;
  }
  if (m instanceof SparseLinear) return m.packedBytes;
  return (base.weightStore.bf16 ? 2 : 4) * out * inF;
}
