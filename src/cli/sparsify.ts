/** `lonas sparsify`: Wanda or magnitude pruning (unstructured or N:M) of a model; writes a model directory. */
import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { loadModelDir, modelFromLoaded, saveModelDir, copyTokenizerFiles } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { writeCompression } from '../io/artifacts.ts';
import { parseTargets } from '../adapters/peft.ts';
import { pruneModel } from '../compress/prune.ts';
import { loadCalibrationSamples } from '../compress/calib-data.ts';
import { floatOption, intOption } from './options.ts';

interface SparsifyOptions { model: string; method: string; sparsity: number; nm?: string; calib?: string; nsamples: number; seqlen?: number; targets: string; seed: number; out: string }

export function sparsifyCommand(): Command {
  return new Command('sparsify')
    .description('prune a model with Wanda (calibrated) or magnitude; unstructured per row or N:M')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .option('--method <m>', 'wanda or magnitude', 'wanda')
    .option('--sparsity <r>', 'fraction of each row set to zero', floatOption('--sparsity', (n) => n > 0 && n < 1, 'in (0, 1)'), 0.5)
    .option('--nm <N:M>', 'semi-structured: keep N of every M consecutive inputs (e.g. 2:4)')
    .option('--calib <file>', 'calibration corpus: a text file or an instruction dataset (wanda)')
    .option('--nsamples <n>', 'calibration sequences', intOption('--nsamples', 1), 128)
    .option('--seqlen <n>', 'tokens per calibration sequence (default: the model context)', intOption('--seqlen', 2))
    .option('--targets <list>', 'projections to prune', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj')
    .option('--seed <s>', 'calibration sampling seed', intOption('--seed'), 0)
    .requiredOption('--out <dir>', 'output model directory')
    .action((o: SparsifyOptions) => {
      if (o.method !== 'wanda' && o.method !== 'magnitude') throw new Error(`--method ${o.method}: use wanda or magnitude`);
      let nm: { n: number; m: number } | null = null;
      if (o.nm) {
        const m = o.nm.match(/^(\d+):(\d+)$/);
        if (!m) throw new Error(`--nm ${o.nm}: expected N:M, e.g. 2:4`);
        nm = { n: Number(m[1]), m: Number(m[2]) };
      }
      const loaded = loadModelDir(o.model);
      const model = modelFromLoaded(o.model, loaded);
      let samples: Int32Array[] = [];
      if (o.method === 'wanda') {
        if (!o.calib) throw new Error('--method wanda needs --calib FILE (text or dataset) for activation statistics');
        samples = loadCalibrationSamples(o.calib, loadTokenizer(o.model), o.nsamples, o.seqlen ?? model.config.maxPositions, o.seed);
      }
      const started = Date.now();
      const report = pruneModel(model, samples, {
        method: o.method, sparsity: o.sparsity, nm, targets: parseTargets(o.targets),
        onProgress: (l, n) => process.stderr.write(`sparsify: layer ${l}/${n}\n`),
      });
      saveModelDir(o.out, model, { hfConfig: loaded.hfConfig, overwrite: true });
      copyTokenizerFiles(o.model, o.out);
      writeCompression(o.out, {
        method: o.method, sparsity: o.sparsity, nm: o.nm ?? null, nsamples: samples.length, seqlen: samples[0]?.length ?? null,
        calib: o.calib ? resolve(o.calib) : null, seed: o.seed, achieved_sparsity: report.sparsity, modules: report.modules,
      });
      process.stderr.write(`sparsify: ${(100 * report.sparsity).toFixed(2)}% of the targeted weights are zero (${((Date.now() - started) / 1000).toFixed(1)} s); model written to ${o.out}\n`);
    });
}
