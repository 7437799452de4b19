/**
 * `lonas extract`: turn a sub-network of an elastic adapter into a real, smaller model directory (spec.md §5).
 * Merged: one plain model (W' = W + s·BA on the active slices). Unmerged: the sliced base model plus a sliced
 * PEFT adapter in <out>/adapter. Tokenizer files are copied; lonas_extract.json records the provenance.
 */
import { Command, Option } from 'commander';
import { extractAdapterSubnet } from '../nas/extract-subnet.ts';

interface ExtractCliOptions { model: string; adapter: string; subnet: string; merge?: boolean; out: string; dtype: 'f32' | 'bf16' }

export function extractCommand(): Command {
  return new Command('extract')
    .description('write a sub-network as a self-contained smaller model (merged, or sliced base + sliced adapter)')
    .requiredOption('--model <dir>', 'base model directory')
    .requiredOption('--adapter <dir>', 'elastic adapter directory')
    .requiredOption('--subnet <spec>', 'maximal, heuristic, minimal, or a JSON file (a configuration or a search result such as best.json)')
    .option('--merge', 'fold the adapter into the weights (default: write the sliced adapter to <out>/adapter)')
    .requiredOption('--out <dir>', 'output model directory')
    .addOption(new Option('--dtype <dtype>', 'storage type of the model weights (the unmerged adapter stays f32)').choices(['f32', 'bf16']).default('f32'))
    .action((o: ExtractCliOptions) => {
      process.stdout.write(extractAdapterSubnet(o));
    });
}
