/** `lonas quantize`: GPTQ (4/8/3-bit, group-wise, optional act-order, optionally the LM head) with layer-wise calibration; writes a GPTQ checkpoint. */
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

export function quantizeCommand(): Command {
  return commandFrom(quantizeSpec, (o: QuantizeOptions) => {
    const loaded = loadModelDir(o.model);
    if (loaded.config.quantization) throw new Error(`${o.model} is already quantised (config.json has quantization_config)`);
    const model = modelFromLoaded(o.model, loaded);
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
    });
    process.stderr.write(
      `quantize: ${r.modules} projections${o.lmHead ? ' and the LM head' : ''} to ${o.bits} bits in ${r.seconds.toFixed(1)} s; written to ${o.out}\n`,
    );
  });
}
