/**
 * Adapter for the native addon (native/*.cc → native/build/Release/lonas.node).
 *
 * The addon's exports already have exactly the `Kernels` signatures, so the adapter hands out the
 * addon's own functions: a kernel call costs one N-API call and nothing else (no allocation, no
 * subarray; offsets are passed through). The addon validates every argument itself and throws a
 * TypeError/RangeError naming the kernel and argument. In particular it only accepts Float32Array:
 * a Float64Array gets "… the native kernels are float32-only; float64 runs on the reference kernels".
 *
 * Environment (OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS) is read by OpenBLAS when the addon is loaded;
 * the caller (src/kernels/index.ts) sets it before calling `loadNativeAddon`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels, LinalgKernels, NativeInfo, NativeKernels } from './api.ts';

type KernelName = Exclude<keyof Kernels, 'name'>;

const KERNEL_NAMES = [
  'gemm',
  'gemmBatched',
  'gemmBf16',
  'attentionDecode',
  'softmax',
  'softmaxBackward',
  'crossEntropy',
  'crossEntropyBackward',
  'rmsnorm',
  'rmsnormBackward',
  'silu',
  'siluBackward',
  'swiglu',
  'swigluBackward',
  'rope',
  'embedding',
  'embeddingBackward',
  'adamw',
  'dropout',
  'dropoutBackward',
  'addScaled',
  'int4Linear',
  'int4Dequantize',
  'sparseLinear',
] as const satisfies readonly KernelName[];

const INFO_NAMES = [
  'choleskyInverseUpper',
  'gramUpper',
  'hessianFromGram',
  'gptqDequantize',
  'gptqColumns',
  'coreName',
  'config',
  'getThreads',
  'setThreads',
  'compressedIsa',
  'compressedThreads',
  'bf16GemmPath',
  'retainFreedMemory',
] as const satisfies readonly (keyof (NativeInfo & LinalgKernels))[];

// Compile-time check that KERNEL_NAMES lists every kernel of the interface.
type Missing = Exclude<KernelName, (typeof KERNEL_NAMES)[number]>;
const allKernelsListed: [Missing] extends [never] ? true : Missing = true;
void allKernelsListed;

const REBUILD_HINT = 'rebuild it with `npm run build:native` (needs libopenblas-dev and a C++17 compiler)';

/**
 * Adapts the raw addon object (as returned by `loadNativeAddon`) to `Kernels & NativeInfo`, with the
 * compressed-weight kernels (optional in `Kernels`) always present.
 */
export function wrapNativeAddon(addon: unknown): NativeKernels {
  if (typeof addon !== 'object' || addon === null) {
    throw new TypeError(`native addon: expected the module object, got ${addon === null ? 'null' : typeof addon}`);
  }
  const raw = addon as Record<string, unknown>;
  for (const name of [...KERNEL_NAMES, ...INFO_NAMES]) {
    if (typeof raw[name] !== 'function') {
      throw new Error(`native addon does not export '${name}' (stale build?); ${REBUILD_HINT}`);
    }
  }
  const fns = addon as Omit<NativeKernels, 'name'>;
  return Object.freeze({
    name: 'native' as const,
    gemm: fns.gemm,
    gemmBatched: fns.gemmBatched,
    gemmBf16: fns.gemmBf16,
    attentionDecode: fns.attentionDecode,
    softmax: fns.softmax,
    softmaxBackward: fns.softmaxBackward,
    crossEntropy: fns.crossEntropy,
    crossEntropyBackward: fns.crossEntropyBackward,
    rmsnorm: fns.rmsnorm,
    rmsnormBackward: fns.rmsnormBackward,
    silu: fns.silu,
    siluBackward: fns.siluBackward,
    swiglu: fns.swiglu,
    swigluBackward: fns.swigluBackward,
    rope: fns.rope,
    embedding: fns.embedding,
    embeddingBackward: fns.embeddingBackward,
    adamw: fns.adamw,
    dropout: fns.dropout,
    dropoutBackward: fns.dropoutBackward,
    addScaled: fns.addScaled,
    int4Linear: fns.int4Linear,
    int4Dequantize: fns.int4Dequantize,
    sparseLinear: fns.sparseLinear,
    choleskyInverseUpper: fns.choleskyInverseUpper,
    gramUpper: fns.gramUpper,
    hessianFromGram: fns.hessianFromGram,
    gptqDequantize: fns.gptqDequantize,
    gptqColumns: fns.gptqColumns,
    coreName: fns.coreName,
    config: fns.config,
    getThreads: fns.getThreads,
    setThreads: fns.setThreads,
    compressedIsa: fns.compressedIsa,
    compressedThreads: fns.compressedThreads,
    bf16GemmPath: fns.bf16GemmPath,
    retainFreedMemory: fns.retainFreedMemory,
  });
}

/**
 * Absolute path of the built addon: `<repo>/native/build/Release/lonas.node`, where <repo> is the
 * nearest ancestor of this file holding a package.json (works from src/ and from a dist/ build).
 */
export function nativeAddonPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`native addon: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return join(dir, 'native', 'build', 'Release', 'lonas.node');
}

/**
 * Loads the raw addon. Returns null when it has not been built; rethrows any other load failure
 * (missing libopenblas, ABI mismatch, ...) with a hint on how to rebuild.
 */
export function loadNativeAddon(): unknown | null {
  const file = nativeAddonPath();
  if (!existsSync(file)) return null;
  const require = createRequire(import.meta.url);
  try {
    return require(file) as unknown;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`failed to load the native kernels from ${file}: ${reason}; ${REBUILD_HINT}`, { cause: err });
  }
}
