/**
 * GFLOP/s of the bf16 GEMM (gemmBf16 compute 'bf16', native/bf16-gemm.h) per path — amx, avx512bf16, generic
 * (as the CPU allows) — against the exact path on the same bf16 weight (widened, OpenBLAS sgemm) on prefill
 * shapes: x (M, K) · Wᵀ, W (N, K) for M = 128, 512, 1024 and the projections of the 135M shape (1536×576,
 * 576×1536) and of a 7B shape (11008×4096, 4096×11008). Each figure is the median of `--iters` timed calls per
 * round (after a warm-up call), over `--rounds` rounds; `--threads 1,2`. FLOPs = 2·M·N·K; the per-call packing
 * of x and W (O((M + N)·K)) is included, as in use. `<path>_cpu`: GFLOP per CPU second of the process (the
 * figure that survives a shared machine; with 2 threads it sums both threads' time).
 */
import { Rng } from '../src/tensor/index.ts';
import { nativeKernels, setThreads } from '../src/kernels/index.ts';
import type { Bf16GemmPath } from '../src/kernels/api.ts';
import { f32ToBf16 } from '../src/io/safetensors.ts';
import { backendSummary, log, machineBusy, median, nowMs, parseOptions, round } from './common.ts';
import { takeOption } from './generation.ts';

const MS = [128, 512, 1024];
const NK: [number, number][] = [
  [1536, 576],
  [576, 1536],
  [11008, 4096],
  [4096, 11008],
];
const PATHS: Bf16GemmPath[] = ['amx', 'avx512bf16', 'generic'];

function random(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

export async function main(args: string[]): Promise<unknown> {
  const s = takeOption(args, '--shapes'); // e.g. 128:1536x576,512:4096x11008
  const opts = parseOptions(s.rest, { rounds: 2, iters: 2, warmup: 1, threads: [1] });
  const k = nativeKernels();
  if (!k) throw new Error('bf16-gemm: needs the native addon (npm run build:native)');
  const best = k.bf16GemmPath();
  const paths = PATHS.filter((p) => {
    try {
      k.bf16GemmPath(p);
      return true;
    } catch {
      return false;
    }
  });
  k.bf16GemmPath(best);
  const shapes: [number, number, number][] = s.value
    ? s.value.split(',').map((x) => {
        const [m, nk] = x.split(':');
        const [n, kk] = nk.split('x').map(Number);
        return [Number(m), n, kk];
      })
    : MS.flatMap((m) => NK.map(([n, kk]) => [m, n, kk] as [number, number, number]));
  const { backend, coreType } = backendSummary();
  const loadBefore = await machineBusy();
  log(`bf16-gemm: paths ${paths.join(', ')} (default ${best}) vs exact; backend ${backend}, OPENBLAS_CORETYPE=${coreType}`);
  const out: Record<string, Record<string, Record<string, number>>> = {};
  for (const t of opts.threads) {
    setThreads(t);
    out[t] = {};
    for (const [m, n, kk] of shapes) {
      const rng = new Rng(m + n + kk);
      const a = random(rng, m * kk),
        w = new Uint16Array(n * kk),
        c = new Float32Array(m * n);
      f32ToBf16(random(rng, n * kk), w);
      // wall-clock GFLOP/s, and per CPU second of this process (on a shared machine the second is what a
      // product costs: time slices lost to other processes are not counted)
      const time = (compute: 'exact' | 'bf16') => {
        const wall: number[] = [],
          cpu: number[] = [];
        for (let r = 0; r < opts.rounds; r++) {
          for (let i = 0; i < opts.warmup + opts.iters; i++) {
            const t0 = nowMs(),
              c0 = process.cpuUsage();
            k.gemmBf16(true, m, n, kk, 1, a, 0, kk, w, 0, kk, 0, c, 0, n, compute);
            const cu = process.cpuUsage(c0);
            if (i < opts.warmup) continue;
            wall.push((2 * m * n * kk) / ((nowMs() - t0) * 1e6));
            cpu.push((2 * m * n * kk) / (((cu.user + cu.system) / 1e3) * 1e6));
          }
        }
        return [round(median(wall), 1), round(median(cpu), 1)];
      };
      const row: Record<string, number> = {};
      [row.exact_f32, row.exact_f32_cpu] = time('exact');
      for (const p of paths) {
        k.bf16GemmPath(p);
        [row[p], row[`${p}_cpu`]] = time('bf16');
      }
      k.bf16GemmPath(best);
      out[t][`${m}x${n}x${kk}`] = row;
      log(
        `  threads ${t} ${m}x${n}x${kk}: ${Object.entries(row)
          .map(([p, g]) => `${p} ${g}`)
          .join(', ')} GFLOP/s`,
      );
    }
  }
  return {
    bench: 'bf16-gemm',
    shape_order: 'MxNxK (x (M, K) · Wᵀ, W (N, K))',
    unit: 'GFLOP/s',
    threads: out,
    backend,
    coreType,
    machine: loadBefore,
  };
}
