/** `lonas doctor`: which kernels run, with which BLAS core and how many threads. */
import { Command } from 'commander';
import { backendInfo, setThreads } from '../kernels/index.ts';

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('report the kernel backend, OpenBLAS core type and thread count')
    .option('--threads <n>', 'set the BLAS thread count before reporting', (v) => parseInt(v, 10))
    .option('--json', 'print JSON')
    .action((opts: { threads?: number; json?: boolean }) => {
      if (opts.threads !== undefined) setThreads(opts.threads);
      const info = backendInfo();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ node: process.version, ...info })}\n`);
        return;
      }
      const lines = [
        `node          ${process.version}`,
        `kernels       ${info.backend}${info.reason ? ` (${info.reason})` : ''}`,
        ...(info.backend === 'native'
          ? [
              `blas core     ${info.coreType} (OPENBLAS_CORETYPE ${info.coreTypeSource === 'user' ? 'set by you' : info.coreTypeSource === 'detected' ? 'chosen by lonas from CPU flags' : 'not set; OpenBLAS detected it'})`,
              `threads       ${info.threads} (set LONAS_THREADS or --threads to change)`,
              `blas config   ${info.blasConfig}`,
            ]
          : []),
        `cpu flags     ${info.cpuFlags.join(' ') || '(unknown)'}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
