/** `lonas doctor`: which kernels run, with which BLAS core and how many threads; whether MPI can be used. */
import { Command } from 'commander';
import { backendInfo, setThreads } from '../kernels/index.ts';
import { mpiBindingStatus } from '../dist/mpi.ts';

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('report the kernel backend, OpenBLAS core type, thread count and the optional MPI binding')
    .option('--threads <n>', 'set the BLAS thread count before reporting', (v) => parseInt(v, 10))
    .option('--json', 'print JSON')
    .action((opts: { threads?: number; json?: boolean }) => {
      if (opts.threads !== undefined) setThreads(opts.threads);
      const info = backendInfo();
      const mpi = mpiBindingStatus();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ node: process.version, ...info, mpi })}\n`);
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
        `mpi           ${mpi.built ? `binding built (${mpi.library}); mpirun -np N lonas finetune|search … runs data-parallel`
          : mpi.error ? `binding does not load: ${mpi.error}` : 'binding not built (optional; install libopenmpi-dev and run ./scripts/setup.sh --no-run)'}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
