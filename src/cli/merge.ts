/**
 * `lonas merge`: fold an adapter (at a sub-network configuration) into the base weights and write a plain
 * model directory. SparsePEFT adapters merge as W + (s·BA) ⊙ M, so the base's zeros stay exactly zero.
 */
import type { Command } from 'commander';
import { loadModelDir } from '../models/llama/checkpoint.ts';
import { loadWithAdapter } from '../nas/load.ts';
import { extractToDir } from '../nas/extract.ts';
import { countParams } from '../nas/cost.ts';
import { mergeSpec } from '../options/tools.ts';
import type { MergeOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';

export function mergeCommand(): Command {
  return commandFrom(mergeSpec, (o: MergeOptions) => {
    const { model } = loadWithAdapter(o.model, o.adapter, o.subnet);
    const before = countParams(model);
    const { hfConfig } = loadModelDir(o.model);
    const { config } = extractToDir(model, o.out, { merge: true, sourceDir: o.model, hfConfig });
    const after = countParams(loadWithAdapter(o.out).model);
    process.stderr.write(
      `merge: ${config.layers.length} layers; parameters ${before.total - before.adapter} → ${after.total} ` +
        `(non-zero ${after.nonZero}, ${(100 * (1 - after.nonZero / after.total)).toFixed(2)}% zero); written to ${o.out}\n`,
    );
  });
}
