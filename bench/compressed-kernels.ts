/**
 * Decode-style speed of the compressed-weight kernels (INT4 GPTQ layout, 50%-sparse bitmask rows) against
 * dense float32 `gemm` — which forwards M = 1 to OpenBLAS sgemv — measured in the same process.
 *
 *   npm run bench -- compressed-kernels [--rounds N] [--samples N] [--threads 1,2,2/1] [--formats f32,int4,…] [--no-model]
 *   (or node --import tsx bench/compressed-kernels.ts …)
 *
 * Progress goes to stderr; the last stdout line is one JSON object.
 *
 * Thread configurations: "n" = setThreads(n) (OpenBLAS, used by f32 sgemv and the M > 8 paths, and the native
 * pool of every other kernel, native/pool.h); "b/c" sets OpenBLAS to b and the pool to c (compressedThreads).
 * Default 1 and 2.
 *
 * What is measured, per thread configuration:
 *  - shapes: y = x · Wᵀ with M = 1 for the SmolLM-135M weight shapes, written out×in: 1536×576 (gate, up),
 *    576×1536 (down), 576×576 (q, o), 49152×576 (lm_head). Decode streams every weight of the model once
 *    per token (135M params: 540 MB in f32, far beyond the 32 MB L3), so each format gets enough distinct
 *    copies of the matrix to span ≥ 128 MB and a sample runs through all of them ("cold"; the realistic
 *    figure). "hot" repeats one copy (cache-resident, compute-bound; for information).
 *  - model: every linear layer of the 135M model (30 × q, k, v, o, gate, up, down + lm_head), all distinct,
 *    run in order once per "token": the linear-layer share of a decode step and the tokens/s it allows; with
 *    it, interleaved, a one-thread memcpy of 128 MB (copy_gbs: bytes read + written per second), the ceiling
 *    each format's weight stream is compared with (copy_fraction = its GB/s / copy_gbs).
 *  - prefill: M = 128 on the gate shape, GFLOP/s (INT4 exact and sparse dequantise tiles and call sgemm; INT4
 *    int8-act runs its integer kernel, native/int4-q8-gemm.cc).
 * Formats: f32 (4 B/weight), bf16 (2 B/weight, gemmBf16: widened exactly in registers; "bf16-act": x rounded to
 * bf16, vdpbf16ps), INT4 with group size
 * 128 (RTN-quantised from the same weights; 0.5 B/weight + scales/zeros) in compute mode exact ("int4") and
 * int8-act ("int4-int8act", same weights), sparse at 50% (|w| below the row's median dropped; 2.125 B/weight). GB/s counts the bytes
 * each format actually reads; speed-ups are median f32 time / median format time.
 */
import { pathToFileURL } from 'node:url';
import type { NativeInfo } from '../src/kernels/api.ts';
import { kernels, setThreads } from '../src/kernels/index.ts';
import {
  compressedKernels,
  int4Apply,
  packSparse,
  quantizeInt4Rtn,
  sparseApply,
  sparseBytes,
  type Int4Weight,
  type SparseWeight,
} from '../src/kernels/compressed.ts';
import { f32ToBf16 } from '../src/io/safetensors.ts';
import { backendSummary, log, machine, median, round } from './common.ts';

const GROUP = 128;
type Format = 'f32' | 'bf16' | 'bf16-act' | 'int4' | 'int4-int8act' | 'sparse';
const ALL_FORMATS: readonly Format[] = ['f32', 'bf16', 'bf16-act', 'int4', 'int4-int8act', 'sparse'];
let FORMATS: readonly Format[] = ALL_FORMATS;
const emptySamples = (): Record<Format, number[]> => ({ f32: [], bf16: [], 'bf16-act': [], int4: [], 'int4-int8act': [], sparse: [] });
const COLD_BYTES = 128 << 20;

interface Options {
  rounds: number;
  samples: number;
  threads: string[];
  model: boolean;
  formats: Format[];
}

function parseArgs(args: string[]): Options {
  const o: Options = { rounds: 3, samples: 5, threads: ['1', '2'], model: true, formats: [...ALL_FORMATS] };
  for (let i = 0; i < args.length; i++) {
    const key = args[i],
      value = args[i + 1];
    const int = (s: string | undefined): number => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${key} needs a positive integer, got '${s}'`);
      return n;
    };
    if (key === '--rounds') {
      o.rounds = int(value);
      i++;
    } else if (key === '--samples') {
      o.samples = int(value);
      i++;
    } else if (key === '--threads') {
      o.threads = (value ?? '').split(',');
      for (const t of o.threads) t.split('/').forEach(int);
      i++;
    } else if (key === '--no-model') o.model = false;
    else if (key === '--formats') {
      o.formats = (value ?? '').split(',') as Format[];
      for (const f of o.formats) if (!ALL_FORMATS.includes(f)) throw new Error(`--formats: '${f}' is not one of ${ALL_FORMATS.join(', ')}`);
      if (!o.formats.includes('f32')) o.formats.unshift('f32'); // the baseline of every speed-up
      i++;
    } else
      throw new Error(
        `unknown option '${key}' (valid: --rounds N --samples N --threads 1,2,2/1 --formats ${ALL_FORMATS.join(',')} --no-model)`,
      );
  }
  return o;
}

/** xorshift32 → uniform [−1, 1); fast enough for 134M weights. */
function filler(seed: number): (a: Float32Array) => Float32Array {
  let s = seed >>> 0 || 1;
  return (a) => {
    for (let i = 0; i < a.length; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      a[i] = s / 2147483648 - 1;
    }
    return a;
  };
}

/** Drops (sets to 0) the entries of each row whose |w| is below the row's median: ~⌊inF/2⌋ zeros per row. */
function pruneHalf(w: Float32Array, outF: number, inF: number): Float32Array {
  const out = w.slice();
  const mags = new Float32Array(inF);
  for (let o = 0; o < outF; o++) {
    const row = out.subarray(o * inF, (o + 1) * inF);
    for (let j = 0; j < inF; j++) mags[j] = Math.abs(row[j]);
    mags.sort();
    const threshold = mags[Math.floor(inF / 2)];
    for (let j = 0; j < inF; j++) if (Math.abs(row[j]) < threshold) row[j] = 0;
  }
  return out;
}

function int4Bytes(q: Int4Weight): number {
  return 4 * (q.qweight.length + q.scales.length + q.zeros.length + q.gIdx.length);
}

/** One weight matrix in the formats built for it (int4-int8act uses the int4 weight, bf16-act the bf16 one). */
interface Layer {
  outF: number;
  inF: number;
  f32?: Float32Array;
  bf16?: Uint16Array;
  int4?: Int4Weight;
  sparse?: SparseWeight;
}

function makeLayer(outF: number, inF: number, fill: (a: Float32Array) => Float32Array, formats: readonly Format[] = FORMATS): Layer {
  const w = fill(new Float32Array(outF * inF));
  const l: Layer = { outF, inF };
  if (formats.includes('f32')) l.f32 = w;
  if (formats.includes('bf16') || formats.includes('bf16-act')) {
    l.bf16 = new Uint16Array(outF * inF);
    f32ToBf16(w, l.bf16);
  }
  if (formats.includes('int4') || formats.includes('int4-int8act')) l.int4 = quantizeInt4Rtn(w, outF, inF, GROUP);
  if (formats.includes('sparse')) l.sparse = packSparse(pruneHalf(w, outF, inF), outF, inF);
  return l;
}

function bytesOf(l: Layer, f: Format): number {
  if (f === 'f32' || f === 'bf16' || f === 'bf16-act') return (f === 'f32' ? 4 : 2) * l.outF * l.inF;
  return f === 'sparse' ? sparseBytes(l.sparse!) : int4Bytes(l.int4!);
}

/** y = x · Wᵀ for one layer in one format, M rows. */
function runner(f: Format, M: number): (l: Layer, x: Float32Array, y: Float32Array) => void {
  const k = kernels();
  const ck = compressedKernels(k);
  if (f === 'f32') return (l, x, y) => k.gemm(false, true, M, l.outF, l.inF, 1, x, 0, l.inF, l.f32!, 0, l.inF, 0, y, 0, l.outF);
  if (f === 'bf16' || f === 'bf16-act') {
    const compute = f === 'bf16' ? 'exact' : 'bf16-act';
    return (l, x, y) => k.gemmBf16(true, M, l.outF, l.inF, 1, x, 0, l.inF, l.bf16!, 0, l.inF, 0, y, 0, l.outF, compute);
  }
  if (f === 'int4') return (l, x, y) => int4Apply(ck, x, M, l.int4!, y, 'exact');
  if (f === 'int4-int8act') return (l, x, y) => int4Apply(ck, x, M, l.int4!, y, 'int8-act');
  return (l, x, y) => sparseApply(ck, x, M, l.sparse!, y);
}

/** µs per layer call, one sample = one pass over `layers`. */
function sample(layers: Layer[], f: Format, x: Float32Array, y: Float32Array): number {
  const run = runner(f, 1);
  const t0 = performance.now();
  for (const l of layers) run(l, x, y);
  return ((performance.now() - t0) * 1000) / layers.length;
}

const SHAPES: [number, number, string][] = [
  [1536, 576, 'gate/up'],
  [576, 1536, 'down'],
  [576, 576, 'q/o'],
  [49152, 576, 'lm_head'],
];

function shapeBench(opts: Options, threads: string) {
  const out: Record<string, unknown> = {};
  for (const [outF, inF, role] of SHAPES) {
    const fill = filler(outF * 7 + inF);
    const first = makeLayer(outF, inF, fill);
    // distinct copies per format, enough for ≥ COLD_BYTES (the first copy is shared, and used for "hot")
    const sets = {} as Record<Format, Layer[]>;
    for (const f of FORMATS) {
      sets[f] = [first];
      const copies = Math.max(2, Math.ceil(COLD_BYTES / bytesOf(first, f)));
      for (let i = 1; i < copies; i++) sets[f].push(makeLayer(outF, inF, fill, [f]));
    }
    const x = fill(new Float32Array(inF)),
      y = new Float32Array(outF);
    applyThreads(threads);
    const cold = emptySamples(),
      hot = emptySamples();
    for (const f of FORMATS) {
      sample(sets[f], f, x, y);
      sample([first], f, x, y);
    } // warm-up (page faults, pool)
    for (let r = 0; r < opts.rounds; r++) {
      const order = r % 2 === 0 ? FORMATS : [...FORMATS].reverse();
      for (const f of order) {
        for (let s = 0; s < opts.samples; s++) cold[f].push(sample(sets[f], f, x, y));
        const reps = Array.from({ length: Math.max(3, Math.ceil(2000 / Math.max(1, bytesOf(first, f) >> 14))) }, () => first);
        for (let s = 0; s < opts.samples; s++) hot[f].push(sample(reps, f, x, y));
      }
    }
    const res: Record<string, unknown> = { role, in: inF, out: outF };
    const f32Cold = median(cold.f32),
      f32Hot = median(hot.f32);
    for (const f of FORMATS) {
      const bytes = bytesOf(first, f);
      const us = median(cold[f]),
        usHot = median(hot[f]);
      res[f] = {
        bytes,
        copies: sets[f].length,
        cold_us: round(us, 1),
        cold_min_us: round(Math.min(...cold[f]), 1),
        hot_us: round(usHot, 1),
        cold_gbs: round(bytes / us / 1e3, 2),
        cold_f32_equiv_gbs: round((4 * outF * inF) / us / 1e3, 2),
        cold_speedup_vs_f32: round(f32Cold / us, 2),
        hot_speedup_vs_f32: round(f32Hot / usHot, 2),
      };
    }
    const of = (f: Format) => res[f] as { cold_us: number; cold_gbs: number; cold_speedup_vs_f32: number; hot_us: number };
    log(
      `  ${threads}T ${outF}×${inF} (${role}): ` +
        FORMATS.map((f) => `${f} ${of(f).cold_us} µs ${of(f).cold_gbs} GB/s (×${of(f).cold_speedup_vs_f32})`).join(', ') +
        '; hot ' +
        FORMATS.map((f) => `${f} ${of(f).hot_us}`).join(' ') +
        ' µs',
    );
    out[`${outF}x${inF}`] = res;
  }
  return out;
}

/** "n" → OpenBLAS and compressed kernels on n threads; "b/c" → OpenBLAS b, compressed c. */
function applyThreads(cfg: string): void {
  const [blas, ours = blas] = cfg.split('/').map(Number);
  setThreads(blas);
  (kernels() as Partial<NativeInfo>).compressedThreads?.(ours);
}

const MODEL = { layers: 30, dim: 576, kv: 192, hidden: 1536, vocab: 49152 };

function buildModel(): Layer[] {
  const fill = filler(135);
  const { dim, kv, hidden } = MODEL;
  const shapes: [number, number][] = [
    [dim, dim],
    [kv, dim],
    [kv, dim],
    [dim, dim],
    [hidden, dim],
    [hidden, dim],
    [dim, hidden],
  ];
  const layers: Layer[] = [];
  for (let l = 0; l < MODEL.layers; l++) for (const [o, i] of shapes) layers.push(makeLayer(o, i, fill));
  layers.push(makeLayer(MODEL.vocab, dim, fill));
  return layers;
}

const COPY_BYTES = 128 << 20;
let copyBuffers: [Float32Array, Float32Array] | undefined;

/** GB/s (bytes read + written) of one memcpy of COPY_BYTES between two buffers allocated once. */
function copySample(): number {
  copyBuffers ??= [filler(3)(new Float32Array(COPY_BYTES / 4)), new Float32Array(COPY_BYTES / 4)];
  const [src, dst] = copyBuffers;
  const t0 = performance.now();
  dst.set(src);
  return (2 * COPY_BYTES) / (performance.now() - t0) / 1e6;
}

function modelBench(model: Layer[], opts: Options, threads: string) {
  applyThreads(threads);
  const xs = new Map<number, Float32Array>(),
    ys = new Map<number, Float32Array>();
  for (const l of model) {
    if (!xs.has(l.inF)) xs.set(l.inF, filler(l.inF)(new Float32Array(l.inF)));
    if (!ys.has(l.outF)) ys.set(l.outF, new Float32Array(l.outF));
  }
  const token = (f: Format) => {
    const run = runner(f, 1);
    const t0 = performance.now();
    for (const l of model) run(l, xs.get(l.inF)!, ys.get(l.outF)!);
    return performance.now() - t0;
  };
  const ms = emptySamples();
  const copyGbs: number[] = [];
  for (const f of FORMATS) token(f);
  copySample();
  for (let r = 0; r < opts.rounds; r++) {
    for (const f of r % 2 === 0 ? FORMATS : [...FORMATS].reverse()) for (let s = 0; s < opts.samples; s++) ms[f].push(token(f));
    for (let s = 0; s < opts.samples; s++) copyGbs.push(copySample());
  }
  const copy = median(copyGbs);
  const res: Record<string, unknown> = {
    copy_gbs: round(copy, 2),
    copy_meaning: `one-thread memcpy (TypedArray.set) of ${COPY_BYTES >> 20} MB, bytes read + bytes written per second, interleaved with the tokens: the bandwidth ceiling the formats' gbs are compared with (copy_fraction)`,
  };
  for (const f of FORMATS) {
    const bytes = model.reduce((s, l) => s + bytesOf(l, f), 0);
    const t = median(ms[f]);
    res[f] = {
      bytes,
      ms_per_token: round(t, 2),
      min_ms: round(Math.min(...ms[f]), 2),
      tok_s: round(1000 / t, 1),
      gbs: round(bytes / t / 1e6, 2),
      copy_fraction: round(bytes / t / 1e6 / copy, 2),
      speedup_vs_f32: round(median(ms.f32) / t, 2),
    };
  }
  type Fig = { ms_per_token: number; speedup_vs_f32: number; gbs: number; copy_fraction: number };
  log(
    `  ${threads}T model linears: ` +
      FORMATS.map((f) => {
        const r = res[f] as Fig;
        return `${f} ${r.ms_per_token} ms (×${r.speedup_vs_f32}; ${r.gbs} GB/s = ${r.copy_fraction} × copy)`;
      }).join(', ') +
      `; copy ${round(copy, 2)} GB/s`,
  );
  return res;
}

function prefillBench(opts: Options, threads: string) {
  applyThreads(threads);
  const M = 128,
    [outF, inF] = [1536, 576];
  const fill = filler(7);
  const layer = makeLayer(outF, inF, fill);
  const x = fill(new Float32Array(M * inF)),
    y = new Float32Array(M * outF);
  const res: Record<string, number> = {};
  for (const f of FORMATS) {
    const run = runner(f, M);
    for (let i = 0; i < 3; i++) run(layer, x, y);
    const times: number[] = [];
    for (let s = 0; s < opts.rounds * opts.samples; s++) {
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) run(layer, x, y);
      times.push((performance.now() - t0) / 5);
    }
    res[`${f}_gflops`] = round((2 * M * outF * inF) / median(times) / 1e6, 1);
  }
  log(`  ${threads}T prefill M=${M} ${outF}×${inF}: ${FORMATS.map((f) => `${f} ${res[`${f}_gflops`]} GFLOP/s`).join(', ')}`);
  return res;
}

export async function main(args: string[]): Promise<unknown> {
  const opts = parseArgs(args);
  FORMATS = ALL_FORMATS.filter((f) => opts.formats.includes(f));
  const { backend, coreType } = backendSummary();
  const isa = (kernels() as Partial<NativeInfo>).compressedIsa?.() ?? 'reference';
  const before = machine();
  log(
    `compressed kernels: backend ${backend}, OPENBLAS_CORETYPE=${coreType}, SIMD ${isa}; ${opts.rounds} rounds × ${opts.samples} samples; load ${before.load1} on ${before.cpus} CPUs`,
  );
  if (opts.model) log('  building the 135M-shape model in f32, INT4 and sparse (takes a while)…');
  const model = opts.model ? buildModel() : null;
  const threads: Record<string, unknown> = {};
  for (const t of opts.threads) {
    threads[t] = {
      shapes: shapeBench(opts, t),
      ...(model ? { model_linears: modelBench(model, opts, t) } : {}),
      prefill_1536x576_m128: prefillBench(opts, t),
    };
  }
  const first = threads[opts.threads[0]] as {
    shapes: Record<string, Partial<Record<Format, { cold_speedup_vs_f32: number }>>>;
    model_linears?: Partial<Record<Format, { speedup_vs_f32: number }>>;
  };
  const speedups = (f: Format) =>
    FORMATS.includes(f) ? Object.fromEntries(Object.entries(first.shapes).map(([k, v]) => [k, v[f]?.cold_speedup_vs_f32])) : undefined;
  return {
    bench: 'compressed-kernels',
    threads,
    formats: FORMATS,
    int4_speedup: speedups('int4'),
    int4_int8act_speedup: speedups('int4-int8act'),
    bf16_speedup: speedups('bf16'),
    bf16_act_speedup: speedups('bf16-act'),
    sparse_speedup: speedups('sparse'),
    model_int4_speedup: first.model_linears?.int4?.speedup_vs_f32,
    model_int4_int8act_speedup: first.model_linears?.['int4-int8act']?.speedup_vs_f32,
    model_bf16_speedup: first.model_linears?.bf16?.speedup_vs_f32,
    model_bf16_act_speedup: first.model_linears?.['bf16-act']?.speedup_vs_f32,
    model_sparse_speedup: first.model_linears?.sparse?.speedup_vs_f32,
    ratio: first.model_linears?.int4?.speedup_vs_f32 ?? speedups('int4')?.['1536x576'],
    ratio_meaning: `INT4 (exact) speed-up over f32 of ${first.model_linears ? "the whole model's linear layers" : 'the 1536×576 (gate/up) shape'}, threads ${opts.threads[0]}`,
    speedup_meaning: `median f32 gemm (sgemv) time / median format time at M = 1, weights streamed from memory, threads ${opts.threads[0]}; goal int4 ≥ 3, sparse ≥ 1.3`,
    backend,
    coreType,
    simd: isa,
    machine: before,
    machine_after: machine(),
  };
}

// Run directly (not through bench/run.ts): print the JSON line.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
}
