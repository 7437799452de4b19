/**
 * The native kernels for kernel tests, loaded once. A missing addon fails the calling test (not a skip).
 * OPENBLAS_CORETYPE is chosen as src/kernels/index.ts does (OpenBLAS reads it when the addon loads; Debian's
 * 0.3.21 misdetects recent CPUs without it).
 */
import type { NativeKernels } from '../../src/kernels/api.ts';
import { chooseCoreType, cpuFlags } from '../../src/kernels/index.ts';
import { loadNativeAddon, nativeAddonPath, wrapNativeAddon } from '../../src/kernels/native.ts';

let cache: NativeKernels | null | undefined;

export function nativeKernels(): NativeKernels {
  if (cache === undefined) {
    if (!process.env.OPENBLAS_CORETYPE) {
      const core = chooseCoreType(cpuFlags());
      if (core) process.env.OPENBLAS_CORETYPE = core;
    }
    const addon = loadNativeAddon();
    cache = addon === null ? null : wrapNativeAddon(addon);
  }
  if (cache === null)
    throw new Error(`native addon not built (${nativeAddonPath()} is missing): run \`npm run build:native\` before running this test`);
  return cache;
}

/** Puts back the defaults a test changed (best SIMD level, 1 thread), if the addon was loaded at all. */
export function restoreNativeDefaults(): void {
  if (!cache) return;
  cache.compressedIsa('avx512');
  cache.compressedThreads(1);
  cache.setThreads(1);
}
