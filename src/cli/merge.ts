/**
 * `lonas merge`: fold an adapter (at a sub-network configuration) into the base weights and write a plain
 * model directory, one decoder layer at a time (src/nas/extract-stream.ts), in the base's storage dtype
 * unless --dtype says otherwise. SparsePEFT adapters merge as W + (s·BA) ⊙ M, so the base's zeros stay exactly zero.
 */
import type { Command } from 'commander';
import { streamExtract } from '../nas/extract-stream.ts';
import { mergeSpec, weightDtype } from '../options/tools.ts';
import type { MergeOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';
import { readCompression, writeCompression } from '../io/artifacts.ts';

/**
 * Carries the base's lonas_compression.json over to the merged model (written into `outDir`, the new directory before it replaces --out) while it still describes it: a
 * sparsification while the merge kept every zero of the (active) base, a GPTQ record while the output is
 * GPTQ. Otherwise the record is dropped, and the log says why.
 */
function keepCompression(baseDir: string, outDir: string, baseZeros: number, mergedZeros: number, mergedIsGptq: boolean): void {
  const record = readCompression(baseDir);
  if (!record) return;
  const holds = record.method === 'gptq' ? mergedIsGptq : mergedZeros >= baseZeros;
  if (holds) writeCompression(outDir, record);
  else
    process.stderr.write(
      record.method === 'gptq'
        ? `merge: the merged model is not GPTQ, so ${baseDir}'s lonas_compression.json (gptq) is not carried over\n`
        : `merge: the adapter filled ${baseZeros - mergedZeros} of the base's ${baseZeros} zeros, so ${baseDir}'s lonas_compression.json (${record.method}) is not carried over (train with --sparse-adapter to keep them)\n`,
    );
}

export function mergeCommand(): Command {
  return commandFrom(mergeSpec, (o: MergeOptions) => {
    const r = streamExtract(o.model, o.adapter, o.subnet, o.out, {
      merge: true,
      dtype: weightDtype(o.dtype),
      finish: (tmp, r) => {
        const { params: before } = r.subnetCost,
          { params: after } = r.extracted;
        keepCompression(o.model, tmp, before.total - before.nonZero, after.total - after.nonZero, !!r.config.quantization);
      },
    });
    const before = r.subnetCost.params,
      after = r.extracted.params;
    process.stderr.write(
      `merge: ${r.config.layers.length} layers; parameters ${before.total - before.adapter} → ${after.total} ` +
        `(non-zero ${after.nonZero}, ${(100 * (1 - after.nonZero / after.total)).toFixed(2)}% zero), stored as ${r.dtype}; written to ${o.out}\n`,
    );
  });
}
