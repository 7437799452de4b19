/**
 * Layer-wise compression of a checkpoint that need not fit in memory (lonas sparsify, lonas quantize): the
 * embedding, final norm and head are read once; each decoder layer is read when calibration reaches it,
 * compressed, run to give the next layer its inputs, written to its output shard and freed (as the Wanda
 * and GPTQ reference tools carry activations from layer to layer). Peak memory ≈ one layer in float32 +
 * the calibration activations + embedding and head.
 *
 * The output is what the in-memory path (pruneModel / quantizeModel, then saveModelDir) writes, byte for
 * byte: every tensor is announced up front to io/hf-dir.ts ModelDirWriter (same sharding, same order), and
 * GPTQ's zero-point format, known only at the end (v1 cannot store a zero of 0), is fixed by rewriting the
 * qzeros tensors in place before the directory is renamed into place.
 */
import { ModelDirWriter } from '../io/hf-dir.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import { packQzeros, packedWords } from '../io/gptq-format.ts';
import type { GptqFormat } from '../io/gptq-format.ts';
import { Bf16Matrix } from '../tensor/index.ts';
import { nativeKernels } from '../kernels/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { Linear } from '../nn/modules.ts';
import type { LinearLike } from '../nn/modules.ts';
import { QuantLinear } from '../nn/quant-linear.ts';
import type { QuantizedWeight } from '../nn/quantized-weight.ts';
import { DEFAULT_SHARD_BYTES, modelConfigJson } from '../models/llama/checkpoint.ts';
import type { WeightDType } from '../models/llama/checkpoint.ts';
import { formatFor, gptqConfigFor, gptqTensorPlan, gptqTensors } from '../models/llama/gptq-io.ts';
import { LayerwiseCheckpoint } from '../models/llama/layerwise-checkpoint.ts';
import type { LlamaModel, ProjectionName } from '../models/llama/model.ts';
import { llamaWeightTable } from '../models/llama/weights.ts';
import type { LlamaTensor } from '../models/llama/weights.ts';
import type { LayerStream } from './calibrate.ts';

export interface StreamOptions {
  /** storage dtype of the float tensors written (default: the base's, see LayerwiseCheckpoint.dtype) */
  dtype?: WeightDType;
  shardBytes?: number;
  /** the modules GPTQ replaces (lonas quantize): their tensors are announced as qweight/qzeros/scales/g_idx */
  gptq?: { bits: number; groupSize: number; targets: readonly ProjectionName[]; lmHead: boolean };
  /** sees decoder layer i right after it is read, before it is compressed */
  onLayer?: (model: LlamaModel, layer: number) => void;
}

/** A float weight as written in `dtype`: BF16 bits pass through unchanged, anything else as float32 (rounded by the writer). */
function floatTensor(w: Tensor | Bf16Matrix, dtype: WeightDType): TensorToWrite {
  if (w instanceof Bf16Matrix && dtype === 'BF16') return { dtype, shape: w.shape, data: w.bits };
  const t = w instanceof Bf16Matrix ? w.toTensor() : w;
  const data = t.contiguousData();
  return { dtype, shape: t.shape, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

/** The float weight of a Linear as stored now (its bf16 bits when kept in bfloat16, never widened for good). */
function linearWeight(m: Linear): Tensor | Bf16Matrix {
  return m.weightStore.bf16 ?? m.weight;
}

/**
 * Runs `run(model, stream)` — pruneModel or quantizeModel with `stream` — on the checkpoint `src` read layer by
 * layer, writing the compressed model to `out`. Returns run's result and the dtype written.
 */
export function compressStreamed<R>(
  src: string,
  out: string,
  o: StreamOptions,
  run: (model: LlamaModel, stream: LayerStream) => R,
): { result: R; dtype: WeightDType; maxLiveLayers: number } {
  // the same buffer sizes recur layer after layer (weights, Hessians, activations): keep freed memory for reuse
  // rather than paying a page fault per 4 KiB of every fresh buffer (this process only; see retainFreedMemory)
  nativeKernels()?.retainFreedMemory();
  const ckpt = new LayerwiseCheckpoint(src);
  let writer: ModelDirWriter | null = null;
  try {
    const dtype = o.dtype ?? ckpt.dtype;
    const model = ckpt.model();
    const g = o.gptq;
    // a quantised head is its own module: a tied one is untied (quantizeLmHead)
    const outTable = llamaWeightTable({ ...ckpt.config, tieWordEmbeddings: ckpt.config.tieWordEmbeddings && !g?.lmHead });
    const quantized = (row: LlamaTensor) =>
      !!g && ((row.proj !== null && row.name.endsWith('.weight') && g.targets.includes(row.proj)) || (row === outTable.lmHead && g.lmHead));
    const prefix = (row: LlamaTensor) => row.name.replace(/\.weight$/, '');
    writer = new ModelDirWriter(
      out,
      outTable.all.map((row) =>
        quantized(row)
          ? gptqTensorPlan(
              prefix(row),
              { out: row.shape[0], inF: row.shape[1], bits: g!.bits },
              Math.ceil(row.shape[1] / (g!.groupSize > 0 ? g!.groupSize : row.shape[1])),
            )
          : { [row.name]: { dtype, shape: row.shape } },
      ),
      { shardBytes: o.shardBytes ?? DEFAULT_SHARD_BYTES, overwrite: true },
    );
    const w = writer;
    const modules: { prefix: string; qw: Pick<QuantizedWeight, 'zeros' | 'out' | 'bits' | 'groupSize' | 'inF' | 'gIdx'> }[] = [];
    const putModule = (row: LlamaTensor, m: LinearLike | undefined) => {
      if (!(m instanceof QuantLinear)) throw new Error(`quantize: ${row.name} was not quantised (a bug: it was announced as GPTQ)`);
      for (const [name, t] of Object.entries(gptqTensors(prefix(row), m.qw, 'gptq_v2'))) w.put(name, t);
      modules.push({
        prefix: prefix(row),
        qw: { zeros: m.qw.zeros, out: m.qw.out, bits: m.qw.bits, groupSize: m.qw.groupSize, inF: m.qw.inF, gIdx: m.qw.gIdx },
      });
    };
    w.put(outTable.embed.name, floatTensor(model.embed.weightStore.bf16 ?? model.embed.weight, dtype));
    const stream: LayerStream = {
      enter: (i) => {
        ckpt.loadLayer(model, i);
        o.onLayer?.(model, i);
      },
      leave: (i) => {
        const layer = model.layers[i];
        const tensors = new Map<string, Tensor>([
          [outTable.layers[i].inputNorm.name, layer.inputNorm.weight],
          [outTable.layers[i].postAttentionNorm.name, layer.postAttentionNorm.weight],
          ...Object.values(layer.proj).flatMap((p) => p.baseTensors().map((t): [string, Tensor] => [t.name!, t])),
        ]);
        for (const row of outTable.all.filter((r) => r.layer === i)) {
          if (quantized(row)) putModule(row, layer.proj[row.proj!]);
          else w.put(row.name, floatTensor(tensors.get(row.name)!, dtype));
        }
        ckpt.unloadLayer(model, i);
      },
    };
    const result = run(model, stream);
    w.put(outTable.norm.name, floatTensor(model.norm.weight, dtype));
    if (outTable.lmHead) {
      if (quantized(outTable.lmHead)) putModule(outTable.lmHead, model.lmHead);
      else if (model.lmHead instanceof Linear) w.put(outTable.lmHead.name, floatTensor(linearWeight(model.lmHead), dtype));
      else throw new Error(`the LM head is a ${model.lmHead.constructor.name}; expected a float Linear`);
    }
    // zero-point format as saveModelDir chooses it (gptq-io.ts formatFor): v1 unless a zero is 0
    const format: GptqFormat = formatFor(modules.map((m) => m.qw));
    if (format === 'gptq')
      for (const { prefix: p, qw } of modules) {
        const groups = qw.zeros.length / qw.out;
        w.rewrite(`${p}.qzeros`, {
          dtype: 'I32',
          shape: [groups, packedWords(qw.out, qw.bits)],
          data: packQzeros(qw.zeros, groups, qw.out, qw.bits, format),
        });
      }
    // the config of exactly the modules written (as saveModelDir derives it)
    const quantization = gptqConfigFor(
      new Map(modules.map((m) => [m.prefix, m.qw])),
      model.config.layers.length,
      format,
      model.config.quantization,
    );
    w.finish(modelConfigJson({ ...model.config, quantization }, dtype, ckpt.hfConfig));
    writer = null;
    return { result, dtype, maxLiveLayers: ckpt.maxLive };
  } finally {
    writer?.abort();
    ckpt.close();
  }
}
