/**
 * `lonas search`: find the accuracy/cost Pareto front of an elastic adapter's sub-networks (cheap candidates,
 * then NSGA-II), and choose the fewest-cost one within `--delta` of the reference. See src/nas/search-adapter.ts.
 */
import type { Command } from 'commander';
import { searchAdapter } from '../nas/search-adapter.ts';
import { searchSpec } from '../options/search.ts';
import type { SearchOptions } from '../options/search.ts';
import { commandFrom } from './command.ts';
import { SearchBar } from './progress.ts';

type SearchCliOptions = SearchOptions;

export function searchCommand(): Command {
  return commandFrom(searchSpec, (o: SearchCliOptions) => runSearchCli(o));
}

async function runSearchCli(o: SearchCliOptions): Promise<void> {
  const bar = new SearchBar();
  const searched = await searchAdapter(o, {
    log: (line) => process.stderr.write(`${line}\n`),
    onProgress: (p, scoreName) => bar.update(p, scoreName),
    onSearchEnd: () => bar.stop(),
  });
  if (searched) process.stdout.write(searched.summary); // null on the serving ranks of an mpirun search
}
