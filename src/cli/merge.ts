/**
 * `lonas merge`: fold an adapter (at a sub-network configuration) into the base weights and write a plain
 * model directory, one decoder layer at a time (src/nas/extract-stream.ts), in the base's storage dtype
 * unless --dtype says otherwise. SparsePEFT adapters merge as W + (s·BA) ⊙ M, so the base's zeros stay exactly zero.
 * A GPTQ base stays INT4 on its own grid (the merge requantised, its cost printed and recorded in
 * lonas_merge.json); --dequantize writes the float merge in --dtype.
 */
import type { Command } from 'commander';
import { TORCH_DTYPES } from '../models/llama/checkpoint.ts';
import { streamExtract } from '../nas/extract-stream.ts';
import { describeRequantization, requantizationRecord } from '../nas/extract.ts';
import type { Requantization } from '../nas/extract.ts';
import { mergeSpec, weightDtype } from '../options/tools.ts';
import type { MergeOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';
import { readCompression, writeCompression, writeMergeRecord } from '../io/artifacts.ts';
import { resolve } from 'node:path';

/**
 * Carries the base's lonas_compression.json over to the merged model (written into `outDir`, the new directory before it replaces --out) while it still describes it: a
 * sparsification while the merge kept every zero of the (active) base, a GPTQ record while the output is
 * GPTQ — with what requantising changed, and `kept_zeros` lowered by the zeros the merge lost (each lost
 * zero may have been a kept one, so the count stays one the output really has). Otherwise the record is
 * dropped, and the log says why.
 */
function keepCompression(
  baseDir: string,
  outDir: string,
  zeros: { base: number; merged: number },
  merged: { isGptq: boolean; requantization: Requantization | null; zerosLost: Map<string, number> },
): void {
  const record = readCompression(baseDir);
  if (!record) return;
  if (record.method !== 'gptq') {
    if (zeros.merged >= zeros.base) writeCompression(outDir, record);
    else
      process.stderr.write(
        `merge: the adapter filled ${zeros.base - zeros.merged} of the base's ${zeros.base} zeros, so ${baseDir}'s lonas_compression.json (${record.method}) is not carried over (train with --sparse-adapter to keep them)\n`,
      );
    return;
  }
  if (!merged.isGptq) {
    process.stderr.write(
      `merge: the merged model is not GPTQ (--dequantize), so ${baseDir}'s lonas_compression.json (gptq) is not carried over\n`,
    );
    return;
  }
  const keptZeros = Object.fromEntries(
    Object.entries(record.kept_zeros).map(([m, n]) => [m, Math.max(0, n - (merged.zerosLost.get(m) ?? 0))]),
  );
  const lowered = Object.entries(record.kept_zeros).reduce((s, [m, n]) => s + n - keptZeros[m], 0);
  if (lowered)
    process.stderr.write(
      `merge: the adapter moved zeros of the base off 0: kept_zeros in lonas_compression.json lowered by ${lowered} (train with --sparse-adapter to keep them)\n`,
    );
  writeCompression(outDir, {
    ...record,
    kept_zeros: keptZeros,
    ...(merged.requantization ? { merge_requantization: requantizationRecord(merged.requantization) } : {}),
  });
}

export function mergeCommand(): Command {
  return commandFrom(mergeSpec, (o: MergeOptions) => {
    const r = streamExtract(o.model, o.adapter, o.subnet, o.out, {
      merge: true,
      dtype: weightDtype(o.dtype),
      dequantize: o.dequantize,
      finish: (tmp, r) => {
        const { params: before } = r.subnetCost,
          { params: after } = r.extracted;
        keepCompression(
          o.model,
          tmp,
          { base: before.total - before.nonZero, merged: after.total - after.nonZero },
          { isGptq: !!r.config.quantization, requantization: r.requantization, zerosLost: r.zerosLost },
        );
        writeMergeRecord(tmp, {
          format: 1,
          source_model: resolve(o.model),
          adapter: resolve(o.adapter),
          subnet: o.subnet,
          dequantized: r.dequantized,
          requantization: r.requantization && requantizationRecord(r.requantization),
        });
      },
    });
    if (r.requantization) process.stderr.write(`merge: ${describeRequantization(r.requantization)}\n`);
    else if (r.dequantized) process.stderr.write(`merge: --dequantize: the GPTQ base is written in ${TORCH_DTYPES[r.dtype]}\n`);
    const before = r.subnetCost.params,
      after = r.extracted.params;
    process.stderr.write(
      `merge: ${r.config.layers.length} layers; parameters ${before.total - before.adapter} → ${after.total} ` +
        `(non-zero ${after.nonZero}, ${(100 * (1 - after.nonZero / after.total)).toFixed(2)}% zero), stored as ${r.dtype}; written to ${o.out}\n`,
    );
  });
}
