/**
 * The MPI world a lonas process runs in. Started by `mpirun -np N lonas …`, every process is one rank of
 * MPI_COMM_WORLD and talks to the others through the optional binding native/mpi (built by
 * scripts/setup.sh when OpenMPI is installed). Started any other way (or as a 1-rank job) the world is
 * this process alone and MPI is never loaded, so lonas works exactly as without the binding.
 *
 * At exit a rank finalises MPI when it ends with code 0 and calls MPI_Abort otherwise, so a failing rank
 * ends the whole job (non-zero) instead of leaving the others blocked in a collective.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { nativeAddonPath } from '../kernels/native.ts';

export interface World {
  rank: number;
  size: number;
  /** in-place element-wise sum over all ranks (every rank passes an array of the same length) */
  allreduceSum(buf: Float32Array | Float64Array): void;
  /** in-place copy of `root`'s bytes to every rank */
  bcast(buf: ArrayBufferView, root: number): void;
}

interface Binding {
  init(): { rank: number; size: number };
  libraryVersion(): string;
  allreduceSum(buf: Float32Array | Float64Array): void;
  bcast(buf: ArrayBufferView, root: number): void;
  abort(code: number): void;
  finalize(): void;
}

/** the binding's file: native/mpi/build/Release/lonas_mpi.node beside the kernel addon */
export function mpiBindingPath(): string {
  return join(nativeAddonPath(), '..', '..', '..', 'mpi', 'build', 'Release', 'lonas_mpi.node');
}

/** ranks in the job that launched this process (Open MPI, MPICH/PMI or PMIx launchers), or null when not launched by mpirun */
export function launchedRanks(env: NodeJS.ProcessEnv = process.env): number | null {
  const v = env.OMPI_COMM_WORLD_SIZE ?? env.PMI_SIZE ?? env.PMIX_SIZE;
  return v === undefined ? null : Number(v);
}

export const SINGLE_PROCESS: World = {
  rank: 0,
  size: 1,
  allreduceSum: () => {},
  bcast: () => {},
};

let current: World | null = null;

function loadBinding(): Binding {
  const file = mpiBindingPath();
  if (!existsSync(file)) {
    throw new Error(
      `lonas was started by mpirun with ${launchedRanks()} ranks, but the MPI binding ${file} is not built; ` +
        'install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) and run ./scripts/setup.sh --no-run (or npm run build:mpi)',
    );
  }
  try {
    return createRequire(import.meta.url)(file) as Binding;
  } catch (e) {
    throw new Error(`failed to load the MPI binding ${file}: ${(e as Error).message}; rebuild it with npm run build:mpi`, { cause: e });
  }
}

/** This process's world (MPI is initialised on the first call when mpirun started more than one rank). */
export function world(): World {
  if (current) return current;
  const ranks = launchedRanks();
  if (ranks === null || ranks <= 1) {
    current = SINGLE_PROCESS;
    return current;
  }
  const mpi = loadBinding();
  const { rank, size } = mpi.init();
  process.on('exit', (code) => (code === 0 ? mpi.finalize() : mpi.abort(code)));
  current = { rank, size, allreduceSum: (b) => mpi.allreduceSum(b), bcast: (b, root) => mpi.bcast(b, root) };
  return current;
}

/** What `lonas doctor` reports: whether the binding is built and loads, and its MPI library (MPI is not initialised). */
export function mpiBindingStatus(): { built: boolean; path: string; library?: string; error?: string } {
  const path = mpiBindingPath();
  if (!existsSync(path)) return { built: false, path };
  try {
    return { built: true, path, library: (createRequire(import.meta.url)(path) as Binding).libraryVersion().split(',')[0].trim() };
  } catch (e) {
    return { built: false, path, error: (e as Error).message };
  }
}

/** `value` on `root`, sent to every rank as JSON (the other ranks pass undefined). */
export function bcastJson<T>(w: World, value: T | undefined, root = 0): T {
  if (w.size === 1) return value as T;
  const bytes = w.rank === root ? new TextEncoder().encode(JSON.stringify(value)) : null;
  const len = Int32Array.of(bytes?.length ?? 0);
  w.bcast(len, root);
  const buf = bytes ?? new Uint8Array(len[0]);
  w.bcast(buf, root);
  return JSON.parse(new TextDecoder().decode(buf)) as T;
}
