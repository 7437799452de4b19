/** `lonas doctor`: which kernels run, with which BLAS core and how many threads; whether MPI can be used. */
import type { Command } from 'commander';
import { backendInfo, nativeKernels, setThreads } from '../kernels/index.ts';
import { mpiBindingStatus } from '../dist/mpi.ts';
import { bf16Compute, int4Compute } from '../kernels/compute-mode.ts';
import { doctorSpec } from '../options/tools.ts';
import type { DoctorOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';

export function doctorCommand(): Command {
  return commandFrom(doctorSpec, (opts: DoctorOptions) => {
    if (opts.threads !== undefined) setThreads(opts.threads);
    const info = backendInfo();
    const mpi = mpiBindingStatus();
    const compute = { int4: int4Compute(), bf16: bf16Compute() };
    const bf16Gemm = nativeKernels()?.bf16GemmPath() ?? null; // the kernel of `--compute bf16`
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ node: process.version, ...info, compute, bf16Gemm, mpi })}\n`);
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
            `bf16 gemm     ${bf16Gemm} (the kernel of --compute bf16: amx, else avx512bf16, else generic, as this CPU and kernel allow)`,
          ]
        : []),
      `cpu flags     ${info.cpuFlags.join(' ') || '(unknown)'}`,
      `compute       INT4 ${compute.int4}, bf16 ${compute.bf16} (LONAS_INT4_COMPUTE=int8-act, LONAS_BF16_COMPUTE=bf16-act choose the approximate paths)`,
      `mpi           ${
        mpi.built
          ? `binding built (${mpi.library}); mpirun -np N lonas finetune|search … runs data-parallel`
          : mpi.error
            ? `binding does not load: ${mpi.error}`
            : 'binding not built (optional; install libopenmpi-dev and run ./scripts/setup.sh --no-run)'
      }`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  });
}
