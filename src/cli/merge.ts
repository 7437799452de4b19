/**
 * `lonas merge`: fold an adapter (at a sub-network configuration) into the base weights and write a plain
 * model directory. SparsePEFT adapters merge as W + (s·BA) ⊙ M, so the base's zeros stay exactly zero.
 */
import type { Command } from 'commander';
import { loadModelDir } from '../models/llama/checkpoint.ts';
import { loadWithAdapter } from '../nas/load.ts';
import { describeRequantization, extractToDir, requantizationRecord } from '../nas/extract.ts';
import type { Requantization } from '../nas/extract.ts';
import { countParams } from '../nas/cost.ts';
import { mergeSpec } from '../options/tools.ts';
import type { MergeOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';
import { readCompression, writeCompression } from '../io/artifacts.ts';

/**
 * Carries the base's lonas_compression.json over to the merged model while it still describes it: a
 * sparsification while the merge kept every zero of the (active) base, a GPTQ record while the output is
 * GPTQ. Otherwise the record is dropped, and the log says why.
 */
function keepCompression(
  baseDir: string,
  outDir: string,
  baseZeros: number,
  mergedZeros: number,
  mergedIsGptq: boolean,
  requantization: Requantization | null,
): void {
  const record = readCompression(baseDir);
  if (!record) return;
  const holds = record.method === 'gptq' ? mergedIsGptq : mergedZeros >= baseZeros;
  if (holds)
    writeCompression(
      outDir,
      record.method === 'gptq' && requantization ? { ...record, merge_requantization: requantizationRecord(requantization) } : record,
    );
  else
    process.stderr.write(
      record.method === 'gptq'
        ? `merge: the merged model is not GPTQ (--dequantize), so ${baseDir}'s lonas_compression.json (gptq) is not carried over\n`
        : `merge: the adapter filled ${baseZeros - mergedZeros} of the base's ${baseZeros} zeros, so ${baseDir}'s lonas_compression.json (${record.method}) is not carried over (train with --sparse-adapter to keep them)\n`,
    );
}

export function mergeCommand(): Command {
  return commandFrom(mergeSpec, (o: MergeOptions) => {
    const { model } = loadWithAdapter(o.model, o.adapter, o.subnet);
    const before = countParams(model);
    const { hfConfig } = loadModelDir(o.model);
    const { config, requantization } = extractToDir(model, o.out, { merge: true, sourceDir: o.model, hfConfig, dequantize: o.dequantize });
    const after = countParams(loadWithAdapter(o.out).model);
    keepCompression(o.model, o.out, before.total - before.nonZero, after.total - after.nonZero, !!config.quantization, requantization);
    if (requantization) process.stderr.write(`merge: ${describeRequantization(requantization)}\n`);
    else if (o.dequantize && hfConfig.quantization_config)
      process.stderr.write('merge: --dequantize: the GPTQ base is written in float32\n');
    process.stderr.write(
      `merge: ${config.layers.length} layers; parameters ${before.total - before.adapter} → ${after.total} ` +
        `(non-zero ${after.nonZero}, ${(100 * (1 - after.nonZero / after.total)).toFixed(2)}% zero); written to ${o.out}\n`,
    );
  });
}
