/**
 * 1 → N thread scaling of every native kernel that splits its work over the pool (native/pool.h), at the
 * 135M model's shapes: training-sized calls (512 tokens; sgemm is OpenBLAS's, whose threads setThreads sets too)
 * and decode-sized ones (f32, bf16, INT4, 50% sparse products at M = 1), threads interleaved in one
 * process (round r runs the thread counts in alternating order), medians and spread.
 *
 *   npm run bench -- kernel-threads [--rounds N] [--iters N] [--warmup N] [--threads 1,2]
 *
 * Progress goes to stderr; the last stdout line is one JSON object: per kernel, µs per call at each thread
 * count (median, min, max over rounds) and the speed-up of the last count over the first; `ratio` is the
 * median speed-up over the kernels.
 */
import { pathToFileURL } from 'node:url';
import type { NativeKernels } from '../src/kernels/api.ts';
import { kernels, setThreads } from '../src/kernels/index.ts';
import { compressedKernels, int4Apply, packSparse, quantizeInt4Rtn, sparseApply } from '../src/kernels/compressed.ts';
import { f32ToBf16 } from '../src/io/safetensors.ts';
import { backendSummary, log, machine, median, parseOptions, round } from './common.ts';

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = (s / 2147483648 - 1) * scale;
  }
  return a;
}

/** The kernels and the calls to time (each closure is one call on preallocated buffers). */
function cases(): [string, () => void][] {
  const k = kernels() as NativeKernels;
  const ck = compressedKernels(k);
  const T = 512,
    C = 576,
    H = 1536,
    V = 49152,
    heads = 9,
    kvHeads = 3,
    D = 64;
  const x = rand(T * C, 1),
    w = rand(C, 2),
    y = new Float32Array(T * C),
    rstd = new Float32Array(T),
    dy = rand(T * C, 3);
  const dx = new Float32Array(T * C),
    dw = new Float32Array(C);
  const g = rand(T * H, 4, 4),
    u = rand(T * H, 5),
    dout = rand(T * H, 19),
    o = new Float32Array(T * H),
    dg = new Float32Array(T * H),
    du = new Float32Array(T * H);
  const scores = rand(heads * 128 * T, 6, 4),
    probs = new Float32Array(scores.length),
    dscores = new Float32Array(scores.length); // (9·128 rows, 512)
  const ceRows = 64,
    logits = rand(ceRows * V, 7, 6),
    targets = Int32Array.from({ length: ceRows }, (_, r) => (r * 7919) % V);
  const lse = new Float32Array(ceRows),
    dlogits = new Float32Array(ceRows * V);
  const nParams = 4_000_000,
    p = rand(nParams, 8),
    pg = rand(nParams, 9),
    m = new Float32Array(nParams),
    v = new Float32Array(nParams);
  const cos = rand((T * D) / 2, 10),
    sin = rand((T * D) / 2, 11),
    pos = Int32Array.from({ length: T }, (_, t) => t),
    q = rand(T * heads * D, 12);
  const qo = new Float32Array(q.length);
  const Tk = 512,
    kc = rand(8 * Tk * kvHeads * D, 13),
    vc = rand(8 * Tk * kvHeads * D, 14),
    qd = rand(8 * heads * D, 15),
    od = new Float32Array(8 * heads * D);
  const w4 = quantizeInt4Rtn(rand(H * C, 16), H, C, 128),
    xv = rand(C, 17),
    yv = new Float32Array(V);
  const wf = rand(H * C, 18),
    wb = new Uint16Array(H * C);
  f32ToBf16(wf, wb);
  const ws = packSparse(
    wf.map((v, i) => (i % 2 === (Math.floor(i / C) & 1) ? 0 : v)),
    H,
    C,
  ); // 50%: every other column, shifted per row
  const yp = new Float32Array(T * H); // (512, 1536) of a prefill-sized product
  return [
    ['rmsnorm 512×576', () => k.rmsnorm(x, w, y, rstd, T, C, 1e-5)],
    ['rmsnormBackward 512×576', () => k.rmsnormBackward(x, w, rstd, dy, dx, dw, T, C)],
    ['swiglu 512×1536', () => k.swiglu(g, u, o, T * H)],
    ['swigluBackward 512×1536', () => k.swigluBackward(g, u, dout, dg, du, T * H)],
    ['softmax 1152×512 causal', () => k.softmax(scores, probs, scores.length / T, T, 0.125, T, 0)],
    ['softmaxBackward 1152×512', () => k.softmaxBackward(probs, scores, dscores, scores.length / T, T, 0.125)],
    ['crossEntropy 64×49152', () => k.crossEntropy(logits, targets, lse, ceRows, V, -100)],
    ['crossEntropyBackward 64×49152', () => k.crossEntropyBackward(logits, targets, lse, ceRows, V, -100, 1 / ceRows, dlogits)],
    ['rope 512×9×64', () => k.rope(q, qo, pos, cos, sin, T, heads, D, 1)],
    ['adamw 4M', () => k.adamw(p, pg, m, v, nParams, 1e-4, 0.9, 0.999, 1e-8, 0, 0.5, 0.5)],
    ['attentionDecode B=1 Tk=512', () => k.attentionDecode(qd, kc, vc, od, 1, Tk, heads, kvHeads, D, Tk * kvHeads * D, 0.125, null)],
    ['attentionDecode B=8 Tk=512', () => k.attentionDecode(qd, kc, vc, od, 8, Tk, heads, kvHeads, D, Tk * kvHeads * D, 0.125, null)],
    ['int4 exact 1536×576 M=1 (hot)', () => int4Apply(ck, xv, 1, w4, yv, 'exact')],
    ['int4 int8-act 1536×576 M=1 (hot)', () => int4Apply(ck, xv, 1, w4, yv, 'int8-act')],
    ['gemmBf16 1536×576 M=1 (hot)', () => k.gemmBf16(true, 1, H, C, 1, xv, 0, C, wb, 0, C, 0, yv, 0, H)],
    ['sparse 50% 1536×576 M=1 (hot)', () => sparseApply(ck, xv, 1, ws, yv)],
    ['gemm f32 1536×576 M=1 (hot)', () => k.gemm(false, true, 1, H, C, 1, xv, 0, C, wf, 0, C, 0, yv, 0, H)],
    ['sgemm 512×576 · (1536×576)ᵀ', () => k.gemm(false, true, T, H, C, 1, x, 0, C, wf, 0, C, 0, yp, 0, H)],
  ];
}

export async function main(args: string[]): Promise<unknown> {
  const o = parseOptions(args, { rounds: 5, iters: 20, warmup: 3, threads: [1, 2] });
  const { backend, coreType } = backendSummary();
  const before = machine();
  log(
    `kernel thread scaling: backend ${backend}, ${coreType}; threads ${o.threads.join(', ')}; ${o.rounds} rounds × ${o.iters} calls; load ${before.load1} on ${before.cpus} CPUs`,
  );
  const results: Record<string, unknown> = {};
  const speedups: number[] = [];
  for (const [name, call] of cases()) {
    const samples = new Map<number, number[]>(o.threads.map((t) => [t, []]));
    for (let r = 0; r < o.rounds; r++) {
      for (const t of r % 2 === 0 ? o.threads : [...o.threads].reverse()) {
        setThreads(t);
        for (let i = 0; i < o.warmup; i++) call();
        const t0 = performance.now();
        for (let i = 0; i < o.iters; i++) call();
        samples.get(t)!.push(((performance.now() - t0) * 1000) / o.iters);
      }
    }
    const per = Object.fromEntries(
      [...samples].map(([t, s]) => [t, { us: round(median(s), 1), min_us: round(Math.min(...s), 1), max_us: round(Math.max(...s), 1) }]),
    );
    const first = median(samples.get(o.threads[0])!),
      last = median(samples.get(o.threads[o.threads.length - 1])!);
    speedups.push(first / last);
    results[name] = { ...per, speedup: round(first / last, 2) };
    log(
      `  ${name}: ` +
        o.threads.map((t) => `${t}T ${per[t].us} µs (${per[t].min_us}–${per[t].max_us})`).join(', ') +
        ` → ×${round(first / last, 2)}`,
    );
  }
  setThreads(o.threads[0]);
  return {
    bench: 'kernel-threads',
    threads: o.threads,
    kernels: results,
    ratio: round(median(speedups), 2),
    ratio_meaning: `median over kernels of (µs at ${o.threads[0]} thread) / (µs at ${o.threads[o.threads.length - 1]})`,
    backend,
    coreType,
    machine: before,
    machine_after: machine(),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
}
