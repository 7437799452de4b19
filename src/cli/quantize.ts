/** `lonas quantize`: GPTQ (2/3/4/8-bit, group-wise, optional act-order, optionally the LM head) with layer-wise calibration, one decoder layer in memory at a time; writes a GPTQ checkpoint. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { copyTokenizerFiles } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { writeCompression } from '../io/artifacts.ts';
import { quantizeModel } from '../compress/quantize.ts';
import { compressStreamed } from '../compress/stream.ts';
import { loadCalibrationSamples } from '../compress/calib-data.ts';
import { OUTPUT_DTYPES, quantizeSpec } from '../options/compress.ts';
import type { QuantizeOptions } from '../options/compress.ts';
import { commandFrom } from './command.ts';
import { projectionWeightName } from '../models/llama/weights.ts';
import type { LinearLike } from '../nn/modules.ts';
import type { LlamaModel } from '../models/llama/model.ts';

/** Exact zeros of a module's base weight (−0 included). */
function zerosOf(m: LinearLike): number {
  let n = 0;
  for (const v of m.baseTensors()[0].data) if (v === 0) n++;
  return n;
}

export function quantizeCommand(): Command {
  return commandFrom(quantizeSpec, (o: QuantizeOptions) => {
    /*
     * Exact zeros of each weight about to be quantised, by module name (model.layers.0.mlp.up_proj, lm_head):
     * GPTQ keeps a weight's zeros exactly zero when it has any (compress/quantize.ts), so these are the zeros of
     * the output that are sparsity; other codes that dequantise to 0 are rounding, not pruning (lonas inspect).
     */
    const kept: Record<string, number> = {};
    const count = (module: string, m: LinearLike) => {
      const n = zerosOf(m);
      if (n) kept[module] = n;
    };
    let samples: Int32Array[] = [];
    const gptq = { bits: o.bits, groupSize: o.groupSize, targets: o.targets, lmHead: !!o.lmHead };
    const onLayer = (model: LlamaModel, i: number) => {
      for (const p of o.targets) count(projectionWeightName(i, p), model.layers[i].proj[p]);
    };
    const { result: r } = compressStreamed(o.model, o.out, { dtype: o.dtype && OUTPUT_DTYPES[o.dtype], gptq, onLayer }, (model, stream) => {
      samples = loadCalibrationSamples(o.calib, loadTokenizer(o.model), o.nsamples, o.seqlen ?? model.config.maxPositions, o.seed);
      if (o.lmHead) count('lm_head', model.lmHead);
      return quantizeModel(model, samples, {
        bits: o.bits,
        groupSize: o.groupSize,
        actOrder: !!o.actOrder,
        percDamp: o.damp,
        blockSize: o.blockSize,
        trueSequential: o.trueSequential,
        targets: o.targets,
        lmHead: !!o.lmHead,
        stream,
        onProgress: (l, n) => process.stderr.write(`quantize: layer ${l}/${n}\n`),
      });
    });
    copyTokenizerFiles(o.model, o.out);
    writeCompression(o.out, {
      method: 'gptq',
      bits: o.bits,
      group_size: o.groupSize,
      act_order: !!o.actOrder,
      true_sequential: o.trueSequential,
      damp: o.damp,
      nsamples: samples.length,
      seqlen: samples[0].length,
      calib: resolve(o.calib),
      seed: o.seed,
      source: resolve(o.model),
      lm_head: !!o.lmHead,
      kept_zeros: kept,
    });
    const ph = r.phases,
      rest = r.seconds - ph.hessian - ph.factor - ph.columns - ph.install;
    process.stderr.write(
      `quantize: ${r.modules} projections${o.lmHead ? ' and the LM head' : ''} to ${o.bits} bits in ${r.seconds.toFixed(1)} s ` +
        `(Hessians ${ph.hessian.toFixed(1)} s, factorisations ${ph.factor.toFixed(1)} s, GPTQ columns ${ph.columns.toFixed(1)} s, ` +
        `dequantised weights ${ph.install.toFixed(1)} s, calibration forward and layer I/O ${rest.toFixed(1)} s); written to ${o.out}\n`,
    );
  });
}
