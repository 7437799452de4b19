/**
 * `exportOnnx`: a model directory (optionally an adapter's sub-network, merged on the way) as a folder that
 * ONNX Runtime and transformers.js load as they are:
 *   OUT/onnx/model.onnx          (f32; model_fp16.onnx with dtype f16, model_q4.onnx with --int4)
 *   OUT/onnx/model*.onnx_data    external data, when the weights exceed protobuf's 2 GB limit (or asked)
 *   OUT/config.json              the source config.json (per-layer sizes kept in lonas_layers), without
 *                                quantization_config, plus "transformers.js_config" naming the dtype and
 *                                whether external data is used, so `from_pretrained(OUT)` picks the file
 *   OUT/generation_config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { copyTokenizerFiles, hfJson } from '../../io/hf-dir.ts';
import { writeFileAtomic } from '../../io/files.ts';
import { buildDecoder } from './decoder.ts';
import { INLINE_LIMIT_BYTES, writeOnnxModel } from './proto.ts';
import { readModelSource } from './source.ts';
import { withMergedSubnet } from '../merged-subnet.ts';
import type { Requantization } from '../../nas/extract.ts';
import type { ModelSource } from './source.ts';

export interface OnnxExportOptions {
  /** model directory (Hugging Face layout, as `lonas extract --merge` writes) */
  model: string;
  /** elastic adapter whose sub-network `subnet` is merged before export */
  adapter?: string;
  subnet?: string;
  out: string;
  /** storage of the float weights (default f32) */
  dtype?: 'f32' | 'f16';
  /** GPTQ projections as MatMulNBits (the model must be a 4-bit GPTQ checkpoint) */
  int4?: boolean;
  /** 'auto' (default): external data only past protobuf's 2 GB limit */
  externalData?: 'auto' | 'always' | 'never';
}

export interface OnnxExportResult {
  /** the .onnx file */
  modelFile: string;
  files: string[];
  externalData: boolean;
  /** bytes of the weights (initializers) */
  weightBytes: number;
  /** with an adapter on a GPTQ base: what merging onto its grid changed (src/nas/extract.ts) */
  requantization?: Requantization | null;
}

/** transformers.js's file-name suffix of each dtype it loads (utils/dtypes.js). */
const TRANSFORMERS_JS_DTYPE = { f32: ['fp32', ''], f16: ['fp16', '_fp16'], int4: ['q4', '_q4'] } as const;

function checkOptions(o: OnnxExportOptions): void {
  if (!existsSync(o.model) || !statSync(o.model).isDirectory()) throw new Error(`--model ${o.model}: not a model directory`);
  if (o.subnet && !o.adapter) throw new Error('--subnet needs --adapter (a sub-network is a configuration of an elastic adapter)');
  for (const [flag, dir] of [
    ['--model', o.model],
    ['--adapter', o.adapter],
  ] as const) {
    if (dir && resolve(o.out) === resolve(dir)) throw new Error(`--out ${o.out} is the ${flag} directory; export somewhere else`);
  }
}

/** The transformers.js-facing config.json of the export. */
function exportConfig(src: ModelSource, dtype: string, externalData: boolean): Record<string, unknown> {
  const config: Record<string, unknown> = { ...src.hfConfig };
  delete config.quantization_config; // the weights live in the ONNX graph now (MatMulNBits or float)
  const previous = (config['transformers.js_config'] ?? {}) as Record<string, unknown>;
  config['transformers.js_config'] = { ...previous, dtype, use_external_data_format: externalData };
  return config;
}

function writeModelFolder(src: ModelSource, o: OnnxExportOptions): OnnxExportResult {
  const int4 = !!o.int4;
  const q = src.config.quantization;
  if (int4 && !q)
    throw new Error(
      `${join(src.dir, 'config.json')}: has no GPTQ quantization_config; --int4 exports GPTQ checkpoints (run lonas quantize --bits 4 first)`,
    );
  const dtype = o.dtype ?? 'f32';
  const graph = buildDecoder(src, { dtype, int4 });
  const weightBytes = graph.initializerBytes();
  const mode = o.externalData ?? 'auto';
  const externalData = mode === 'always' || (mode === 'auto' && weightBytes > INLINE_LIMIT_BYTES);
  if (mode === 'never' && weightBytes > INLINE_LIMIT_BYTES) {
    throw new Error(`the weights take ${weightBytes} bytes, over protobuf's 2 GB limit for one .onnx file; allow external data`);
  }
  const [jsDtype, suffix] = TRANSFORMERS_JS_DTYPE[int4 ? 'int4' : dtype];
  mkdirSync(join(o.out, 'onnx'), { recursive: true });
  const modelFile = join(o.out, 'onnx', `model${suffix}.onnx`);
  const files = writeOnnxModel(modelFile, graph, {
    externalData,
    docString: `lonas export of ${resolve(o.model)}${o.adapter ? ` with ${resolve(o.adapter)} at ${o.subnet ?? 'maximal'}` : ''}`,
    metadata: { 'lonas.dtype': dtype, 'lonas.int4': String(int4) },
  });
  writeFileAtomic(join(o.out, 'config.json'), `${hfJson(exportConfig(src, jsDtype, externalData))}\n`);
  const copied = copyTokenizerFiles(src.dir, o.out);
  if (!copied.includes('generation_config.json')) {
    const { bos_token_id, eos_token_id, pad_token_id } = src.hfConfig;
    writeFileAtomic(join(o.out, 'generation_config.json'), `${hfJson({ bos_token_id, eos_token_id, pad_token_id })}\n`);
    copied.push('generation_config.json');
  }
  return { modelFile, files: [...files, ...['config.json', ...copied].map((f) => join(o.out, f))], externalData, weightBytes };
}

/** Exports `o.model` (with `o.adapter` at `o.subnet` merged, if given) to the folder `o.out`. */
export function exportOnnx(o: OnnxExportOptions): OnnxExportResult {
  checkOptions(o);
  if (!o.adapter) return writeModelFolder(readModelSource(o.model), o);
  return withMergedSubnet(o.model, o.adapter, o.subnet, (merged, requantization) => ({
    ...writeModelFolder(readModelSource(merged), o),
    requantization,
  }));
}
