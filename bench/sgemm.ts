/**
 * Throughput (GFLOP/s) of kernels().gemm — C = A·B, no transposes, contiguous float32 — against
 * torch.matmul(a, b, out=c) (bench/torch/sgemm.py) for a few transformer-sized shapes, per thread count.
 */
import { Rng } from '../src/tensor/index.ts';
import { kernels, setThreads } from '../src/kernels/index.ts';
import { backendSummary, log, machineBusy, median, min, nowMs, parseOptions, round, runTorch } from './common.ts';

const SHAPES: [number, number, number][] = [
  [256, 768, 768],
  [512, 2048, 768],
  [1024, 1024, 1024],
];
const MIN_SAMPLE_MS = 50;

function randomArray(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

/** GFLOP/s samples of one shape; each sample repeats the product for at least MIN_SAMPLE_MS. */
function measureOurs([m, n, k]: [number, number, number], samples: number): number[] {
  const rng = new Rng(m * 7 + n * 3 + k);
  const a = randomArray(rng, m * k),
    b = randomArray(rng, k * n),
    c = new Float32Array(m * n);
  const gemm = () => kernels().gemm(false, false, m, n, k, 1, a, 0, k, b, 0, n, 0, c, 0, n);
  for (let i = 0; i < 3; i++) gemm();
  let t0 = nowMs();
  gemm();
  const reps = Math.max(1, Math.floor(MIN_SAMPLE_MS / Math.max(nowMs() - t0, 1e-6)));
  const out: number[] = [];
  for (let s = 0; s < samples; s++) {
    t0 = nowMs();
    for (let r = 0; r < reps; r++) gemm();
    out.push((2 * m * n * k * reps) / ((nowMs() - t0) * 1e6));
  }
  return out;
}

function measureTorch(threads: number, samples: number): number[][] {
  const r = runTorch<{ shapes: { gflops: number[] }[] }>('sgemm.py', threads, [
    '--shapes',
    JSON.stringify(SHAPES),
    '--samples',
    String(samples),
    '--min-ms',
    String(MIN_SAMPLE_MS),
  ]);
  return r.shapes.map((s) => s.gflops);
}

function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}

export async function main(args: string[]): Promise<unknown> {
  const opts = parseOptions(args, { rounds: 3, iters: 3, warmup: 3, threads: [1, 2] });
  const { backend, coreType } = backendSummary();
  const loadBefore = await machineBusy();
  log(
    `sgemm: shapes (M,N,K) ${JSON.stringify(SHAPES)}; backend ${backend}, OPENBLAS_CORETYPE=${coreType}; ${opts.rounds} rounds × ${opts.iters} samples of ≥${MIN_SAMPLE_MS} ms`,
  );

  const threads: Record<string, { shapes: Record<string, Record<string, number>>; geomean_ratio: number }> = {};
  for (const t of opts.threads) {
    const ours: number[][] = SHAPES.map(() => []);
    const torch: number[][] = SHAPES.map(() => []);
    for (let r = 0; r < opts.rounds; r++) {
      const runOurs = () => {
        setThreads(t);
        SHAPES.forEach((shape, i) => ours[i].push(...measureOurs(shape, opts.iters)));
      };
      const runTorchSide = () => measureTorch(t, opts.iters).forEach((g, i) => torch[i].push(...g));
      if (r % 2 === 0) {
        runOurs();
        runTorchSide();
      } else {
        runTorchSide();
        runOurs();
      }
      log(
        `  threads ${t} round ${r + 1}/${opts.rounds}: ` +
          SHAPES.map((s, i) => `${s.join('x')} ours ${median(ours[i]).toFixed(1)} / torch ${median(torch[i]).toFixed(1)} GFLOP/s`).join(
            '; ',
          ),
      );
    }
    const shapes: Record<string, Record<string, number>> = {};
    const ratios = SHAPES.map((s, i) => {
      const ratio = median(ours[i]) / median(torch[i]);
      shapes[s.join('x')] = {
        ours_gflops: round(median(ours[i]), 2),
        torch_gflops: round(median(torch[i]), 2),
        ratio: round(ratio),
        ours_max_gflops: round(Math.max(...ours[i]), 2),
        torch_max_gflops: round(Math.max(...torch[i]), 2),
        ours_min_gflops: round(min(ours[i]), 2),
        torch_min_gflops: round(min(torch[i]), 2),
      };
      return ratio;
    });
    threads[t] = { shapes, geomean_ratio: round(geomean(ratios)) };
  }
  const first = opts.threads[0];
  return {
    bench: 'sgemm',
    shape_order: 'MxNxK',
    threads,
    ratio: threads[first].geomean_ratio,
    ratio_meaning: `geometric mean over shapes of ours/torch GFLOP/s at ${first} thread(s); > 1 means lonas is faster`,
    backend,
    coreType,
    machine: loadBefore,
  };
}
