/** The `lonas` command line. One file per command under src/cli/; this file wires them together. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { doctorCommand } from './doctor.ts';
import { generateCommand } from './generate.ts';
import { perplexityCommand } from './perplexity.ts';
import { finetuneCommand } from './finetune.ts';
import { sparsifyCommand } from './sparsify.ts';
import { inspectCommand } from './inspect.ts';
import { mergeCommand } from './merge.ts';
import { quantizeCommand } from './quantize.ts';
import { evalCommand } from './eval.ts';
import { benchCommand } from './bench.ts';
import { extractCommand } from './extract.ts';
import { exportCommand } from './export.ts';
import { searchCommand } from './search.ts';
import { runCommand } from './run.ts';
import { demoCommand } from './demo.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command();
program
  .name('lonas')
  .description('Make LLMs smaller and faster with elastic low-rank adapters and architecture search (LoNAS, Shears, SQFT)')
  .version(pkg.version, '-v, --version');
program.addCommand(doctorCommand());
program.addCommand(generateCommand());
program.addCommand(perplexityCommand());
program.addCommand(finetuneCommand());
program.addCommand(sparsifyCommand());
program.addCommand(inspectCommand());
program.addCommand(mergeCommand());
program.addCommand(quantizeCommand());
program.addCommand(searchCommand());
program.addCommand(extractCommand());
program.addCommand(exportCommand());
program.addCommand(benchCommand());
program.addCommand(evalCommand());
program.addCommand(runCommand());
program.addCommand(demoCommand());

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Expected failures (bad input, missing files) are reported as one clear line, not a stack trace.
  process.stderr.write(`lonas: ${(e as Error).message}\n`);
  if (process.env.LONAS_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
}
