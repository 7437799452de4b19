/**
 * `lonas extract`: turn a sub-network of an elastic adapter into a real, smaller model directory (spec.md §5).
 * Merged: one plain model (W' = W + s·BA on the active slices). Unmerged: the sliced base model plus a sliced
 * PEFT adapter in <out>/adapter. Tokenizer files are copied; lonas_extract.json records the provenance.
 */
import type { Command } from 'commander';
import { extractAdapterSubnet } from '../nas/extract-subnet.ts';
import { extractSpec } from '../options/search.ts';
import type { ExtractOptions } from '../options/search.ts';
import { weightDtype } from '../options/tools.ts';
import { commandFrom } from './command.ts';

export function extractCommand(): Command {
  return commandFrom(extractSpec, (o: ExtractOptions) => {
    process.stdout.write(extractAdapterSubnet({ ...o, dtype: weightDtype(o.dtype) }));
  });
}
