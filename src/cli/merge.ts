/**
 * `lonas merge`: fold an adapter (at a sub-network configuration) into the base weights and write a plain
 * model directory. SparsePEFT adapters merge as W + (s·BA) ⊙ M, so the base's zeros stay exactly zero.
 */
import { Command } from 'commander';
import { loadModelDir } from '../models/llama/checkpoint.ts';
import { loadWithAdapter } from '../nas/load.ts';
import { extractToDir } from '../nas/extract.ts';
import { countParams } from '../nas/cost.ts';

export function mergeCommand(): Command {
  return new Command('merge')
    .description('merge an adapter into its base model (SparsePEFT keeps the sparsity exactly)')
    .requiredOption('--model <dir>', 'base model directory')
    .requiredOption('--adapter <dir>', 'adapter directory')
    .option('--subnet <spec>', 'sub-network configuration: maximal, heuristic, minimal or a JSON file', 'maximal')
    .requiredOption('--out <dir>', 'output model directory')
    .action((o: { model: string; adapter: string; subnet: string; out: string }) => {
      const { model } = loadWithAdapter(o.model, o.adapter, o.subnet);
      const before = countParams(model);
      const { hfConfig } = loadModelDir(o.model);
      const { config } = extractToDir(model, o.out, { merge: true, sourceDir: o.model, hfConfig });
      const after = countParams(loadWithAdapter(o.out).model);
      process.stderr.write(`merge: ${config.layers.length} layers; parameters ${before.total - before.adapter} → ${after.total} ` +
        `(non-zero ${after.nonZero}, ${(100 * (1 - after.nonZero / after.total)).toFixed(2)}% zero); written to ${o.out}\n`);
    });
}
