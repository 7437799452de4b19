/** `lonas sparsify`: Wanda or magnitude pruning (unstructured or N:M) of a model, one decoder layer at a time; writes a model directory. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { copyTokenizerFiles } from '../models/llama/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { writeCompression } from '../io/artifacts.ts';
import { pruneModel } from '../compress/prune.ts';
import { compressStreamed } from '../compress/stream.ts';
import { loadCalibrationSamples } from '../compress/calib-data.ts';
import { DEFAULT_SPARSITY, OUTPUT_DTYPES, sparsifySpec } from '../options/compress.ts';
import type { SparsifyOptions } from '../options/compress.ts';
import { commandFrom } from './command.ts';

export function sparsifyCommand(): Command {
  return commandFrom(sparsifySpec, (o: SparsifyOptions) => {
    const [n, m] = o.nm ? o.nm.split(':').map(Number) : [];
    const nm = o.nm ? { n, m } : null;
    if (nm && o.sparsity !== undefined)
      throw new Error(
        `--nm ${o.nm} prunes ${m - n} of every ${m} inputs (sparsity ${1 - n / m}); drop --sparsity ${o.sparsity}, or drop --nm`,
      );
    if (nm && !(n >= 1 && n < m)) throw new Error(`--nm ${o.nm}: N must be at least 1 and less than M, e.g. 2:4`);
    const sparsity = nm ? 1 - n / m : (o.sparsity ?? DEFAULT_SPARSITY);
    if (o.method === 'wanda' && !o.calib) throw new Error('--method wanda needs --calib FILE (text or dataset) for activation statistics');
    const started = Date.now();
    let samples: Int32Array[] = [];
    const { result: report, dtype } = compressStreamed(o.model, o.out, { dtype: o.dtype && OUTPUT_DTYPES[o.dtype] }, (model, stream) => {
      if (o.method === 'wanda')
        samples = loadCalibrationSamples(o.calib!, loadTokenizer(o.model), o.nsamples, o.seqlen ?? model.config.maxPositions, o.seed);
      return pruneModel(model, samples, {
        method: o.method,
        sparsity,
        nm,
        targets: o.targets,
        stream,
        onProgress: (l, n) => process.stderr.write(`sparsify: layer ${l}/${n}\n`),
      });
    });
    copyTokenizerFiles(o.model, o.out);
    writeCompression(o.out, {
      method: o.method,
      sparsity,
      nm: o.nm ?? null,
      nsamples: samples.length,
      seqlen: samples[0]?.length ?? null,
      calib: o.calib ? resolve(o.calib) : null,
      seed: o.seed,
      achieved_sparsity: report.sparsity,
      modules: report.modules,
    });
    process.stderr.write(
      `sparsify: ${(100 * report.sparsity).toFixed(2)}% of the targeted weights are zero (${((Date.now() - started) / 1000).toFixed(1)} s); model written to ${o.out} (${dtype})\n`,
    );
  });
}
