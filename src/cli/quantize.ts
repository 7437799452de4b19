/** `lonas quantize`: GPTQ (2/3/4/8-bit, group-wise, optional act-order, optionally the LM head) with layer-wise calibration; writes a GPTQ checkpoint. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { loadModelDir, modelFromLoaded, saveModelDir, copyTokenizerFiles } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { writeCompression } from '../io/artifacts.ts';
import { quantizeModel } from '../compress/quantize.ts';
import { loadCalibrationSamples } from '../compress/calib-data.ts';
import { quantizeSpec } from '../options/compress.ts';
import type { QuantizeOptions } from '../options/compress.ts';
import { commandFrom } from './command.ts';
import { projectionWeightName } from '../models/llama/weights.ts';
import type { LoadedModelDir } from '../models/llama/checkpoint.ts';

/**
 * Exact zeros of each weight about to be quantised, by module name (model.layers.0.mlp.up_proj, lm_head):
 * GPTQ keeps a weight's zeros exactly zero when it has any (compress/quantize.ts), so these are the zeros of
 * the output that are sparsity; other codes that dequantise to 0 are rounding, not pruning (lonas inspect).
 */
function keptZeros(loaded: LoadedModelDir, o: QuantizeOptions): Record<string, number> {
  const out: Record<string, number> = {};
  const zeros = (name: string) => {
    let n = 0;
    for (const v of loaded.weights.get(name)?.data ?? []) if (v === 0) n++;
    return n;
  };
  loaded.config.layers.forEach((_, i) => {
    for (const p of o.targets) {
      const module = projectionWeightName(i, p);
      const n = zeros(`${module}.weight`);
      if (n) out[module] = n;
    }
  });
  if (o.lmHead) {
    const n = zeros(loaded.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
    if (n) out.lm_head = n;
  }
  return out;
}

export function quantizeCommand(): Command {
  return commandFrom(quantizeSpec, (o: QuantizeOptions) => {
    const loaded = loadModelDir(o.model);
    if (loaded.config.quantization) throw new Error(`${o.model} is already quantised (config.json has quantization_config)`);
    const model = modelFromLoaded(o.model, loaded);
    const kept = keptZeros(loaded, o);
    const samples = loadCalibrationSamples(o.calib, loadTokenizer(o.model), o.nsamples, o.seqlen ?? model.config.maxPositions, o.seed);
    const r = quantizeModel(model, samples, {
      bits: o.bits,
      groupSize: o.groupSize,
      actOrder: !!o.actOrder,
      percDamp: o.damp,
      blockSize: o.blockSize,
      targets: o.targets,
      lmHead: !!o.lmHead,
      onProgress: (l, n) => process.stderr.write(`quantize: layer ${l}/${n}\n`),
    });
    saveModelDir(o.out, model, { hfConfig: loaded.hfConfig, overwrite: true });
    copyTokenizerFiles(o.model, o.out);
    writeCompression(o.out, {
      method: 'gptq',
      bits: o.bits,
      group_size: o.groupSize,
      act_order: !!o.actOrder,
      damp: o.damp,
      nsamples: samples.length,
      seqlen: samples[0].length,
      calib: resolve(o.calib),
      seed: o.seed,
      source: resolve(o.model),
      lm_head: !!o.lmHead,
      kept_zeros: kept,
    });
    process.stderr.write(
      `quantize: ${r.modules} projections${o.lmHead ? ' and the LM head' : ''} to ${o.bits} bits in ${r.seconds.toFixed(1)} s; written to ${o.out}\n`,
    );
  });
}
