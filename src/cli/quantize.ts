/** `lonas quantize`: GPTQ (4/8/3-bit, group-wise, optional act-order, optionally the LM head) with layer-wise calibration; writes a GPTQ checkpoint. */
import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { loadModelDir, modelFromLoaded, saveModelDir, copyTokenizerFiles } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { writeCompression } from '../io/artifacts.ts';
import { parseTargets } from '../adapters/peft.ts';
import { quantizeModel } from '../compress/quantize.ts';
import { loadCalibrationSamples } from '../compress/calib-data.ts';
import { floatOption, intOption } from './options.ts';

interface QuantizeCliOptions { model: string; method: string; bits: number; groupSize: number; actOrder?: boolean; damp: number; blockSize: number; calib: string; nsamples: number; seqlen?: number; targets: string; lmHead?: boolean; seed: number; out: string }

export function quantizeCommand(): Command {
  return new Command('quantize')
    .description('GPTQ quantisation (asymmetric, group-wise) into the AutoGPTQ checkpoint layout')
    .requiredOption('--model <dir>', 'Hugging Face model directory (a sparse model keeps its zeros exactly)')
    .option('--method <m>', 'gptq', 'gptq')
    .option('--bits <b>', 'bits per weight: 4, 8 or 3', intOption('--bits', 2), 4)
    .option('--group-size <g>', 'inputs per scale/zero group (-1: one group per row)', (v) => parseInt(v, 10), 128)
    .option('--act-order', 'quantise columns in descending Hessian-diagonal order (desc_act)')
    .option('--damp <p>', 'dampening as a fraction of the mean Hessian diagonal', floatOption('--damp', (n) => n > 0 && n < 1, 'in (0, 1)'), 0.01)
    .option('--block-size <n>', 'columns per lazy-update block', intOption('--block-size', 1), 128)
    .requiredOption('--calib <file>', 'calibration corpus: a text file or an instruction dataset')
    .option('--nsamples <n>', 'calibration sequences', intOption('--nsamples', 1), 128)
    .option('--seqlen <n>', 'tokens per calibration sequence (default: the model context)', intOption('--seqlen', 2))
    .option('--targets <list>', 'projections to quantise', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj')
    .option('--lm-head', 'also quantise the LM head, last, with the same settings (quantization_config "lm_head": true); a tied embedding keeps its float weights and the head is untied')
    .option('--seed <s>', 'calibration sampling seed', intOption('--seed'), 0)
    .requiredOption('--out <dir>', 'output model directory')
    .action((o: QuantizeCliOptions) => {
      if (o.method !== 'gptq') throw new Error(`--method ${o.method}: only gptq is implemented`);
      if (![3, 4, 8].includes(o.bits)) throw new Error(`--bits ${o.bits}: use 4, 8 or 3`);
      const loaded = loadModelDir(o.model);
      if (loaded.config.quantization) throw new Error(`${o.model} is already quantised (config.json has quantization_config)`);
      const model = modelFromLoaded(o.model, loaded);
      const samples = loadCalibrationSamples(o.calib, loadTokenizer(o.model), o.nsamples, o.seqlen ?? model.config.maxPositions, o.seed);
      const r = quantizeModel(model, samples, {
        bits: o.bits, groupSize: o.groupSize, actOrder: !!o.actOrder, percDamp: o.damp, blockSize: o.blockSize, targets: parseTargets(o.targets), lmHead: !!o.lmHead,
        onProgress: (l, n) => process.stderr.write(`quantize: layer ${l}/${n}\n`),
      });
      saveModelDir(o.out, model, { hfConfig: loaded.hfConfig, overwrite: true });
      copyTokenizerFiles(o.model, o.out);
      writeCompression(o.out, {
        method: 'gptq', bits: o.bits, group_size: o.groupSize, act_order: !!o.actOrder, damp: o.damp, nsamples: samples.length,
        seqlen: samples[0].length, calib: resolve(o.calib), seed: o.seed, source: resolve(o.model), lm_head: !!o.lmHead,
      });
      process.stderr.write(`quantize: ${r.modules} projections${o.lmHead ? ' and the LM head' : ''} to ${o.bits} bits in ${r.seconds.toFixed(1)} s; written to ${o.out}\n`);
    });
}
