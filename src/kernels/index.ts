/**
 * Chooses the kernel backend once, at first use.
 *
 * Native (OpenBLAS + fused C++) is the default. Debian's OpenBLAS 0.3.21 does not recognise recent
 * Intel CPUs and silently falls back to SSE3 kernels (4–8× slower), so before the shared library is
 * loaded we set OPENBLAS_CORETYPE from the CPU flags (SkylakeX with avx512f, Haswell with avx2) unless
 * the user already set it. Setting it after loading has no effect, which is why this module owns loading.
 *
 * LONAS_KERNELS=reference forces the TypeScript twins (slow; for debugging and tests).
 * Float64 arrays always run on the reference kernels (used by finite-difference gradient checks).
 */
import { readFileSync } from 'node:fs';
import type { FloatArray, Kernels, NativeKernels } from './api.ts';
import { referenceKernels } from './reference.ts';
import { loadNativeAddon, wrapNativeAddon } from './native.ts';

export type { FloatArray, Kernels } from './api.ts';
export { referenceKernels } from './reference.ts';
export { WEIGHT_KERNELS, noteWeightKernel, tallyWeightKernels } from './weight-kernels.ts';
export type { WeightKernel, WeightKernelCalls } from './weight-kernels.ts';

export interface BackendInfo {
  backend: 'native' | 'reference';
  /** Why the reference backend is in use, when it is. */
  reason?: string;
  coreType?: string;
  /** Where the core type came from: the user's environment or our CPU detection. */
  coreTypeSource?: 'user' | 'detected' | 'library default';
  threads?: number;
  blasConfig?: string;
  cpuFlags: string[];
}

let active: { kernels: Kernels; native: NativeKernels | null; info: BackendInfo } | null = null;

/** CPU feature flags relevant to kernel choice, read from /proc/cpuinfo (Linux); empty elsewhere. */
export function cpuFlags(): string[] {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags'));
    const all = new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
    return ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16'].filter((f) => all.has(f));
  } catch {
    return [];
  }
}

/** The OPENBLAS_CORETYPE we would choose for these CPU flags (undefined: let OpenBLAS decide). */
export function chooseCoreType(flags: string[]): string | undefined {
  if (flags.includes('avx512f')) return 'SkylakeX';
  if (flags.includes('avx2')) return 'Haswell';
  return undefined;
}

function init(): NonNullable<typeof active> {
  const flags = cpuFlags();
  if (process.env.LONAS_KERNELS === 'reference') {
    return { kernels: referenceKernels, native: null, info: { backend: 'reference', reason: 'LONAS_KERNELS=reference', cpuFlags: flags } };
  }
  let coreTypeSource: BackendInfo['coreTypeSource'] = 'user';
  if (!process.env.OPENBLAS_CORETYPE) {
    const chosen = chooseCoreType(flags);
    if (chosen) {
      process.env.OPENBLAS_CORETYPE = chosen; // must happen before libopenblas is loaded
      coreTypeSource = 'detected';
    } else coreTypeSource = 'library default';
  }
  const addon = loadNativeAddon();
  if (addon === null) {
    const reason = 'native addon not built (native/build/Release/lonas.node missing); run `npm run build:native`';
    process.stderr.write(
      `\n!!! lonas WARNING: ${reason}.\n!!! Falling back to the TypeScript reference kernels: same numbers, 10-100x slower.\n\n`,
    );
    return { kernels: referenceKernels, native: null, info: { backend: 'reference', reason, cpuFlags: flags } };
  }
  const native = wrapNativeAddon(addon);
  const envThreads = Number(process.env.LONAS_THREADS);
  if (Number.isInteger(envThreads) && envThreads > 0) native.setThreads(envThreads);
  return {
    kernels: native,
    native,
    info: {
      backend: 'native',
      coreType: native.coreName(),
      coreTypeSource,
      threads: native.getThreads(),
      blasConfig: native.config(),
      cpuFlags: flags,
    },
  };
}

function state(): NonNullable<typeof active> {
  if (active === null) active = init();
  return active;
}

/** The kernels for float32 work (native when available). */
export function kernels(): Kernels {
  return state().kernels;
}

/** The native backend with its extra kernels (linear algebra, compressed weights), or null on the reference backend. */
export function nativeKernels(): NativeKernels | null {
  return state().native;
}

/** The kernels able to run on this array type (float64 always uses the reference twins). */
export function kernelsFor(a: FloatArray): Kernels {
  return a instanceof Float64Array ? referenceKernels : state().kernels;
}

export function backendInfo(): BackendInfo {
  const s = state();
  if (s.native) s.info.threads = s.native.getThreads();
  return { ...s.info };
}

/** Number of threads the BLAS may use (no-op on the reference backend). */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`thread count must be a positive integer, got ${n}`);
  state().native?.setThreads(n);
}
