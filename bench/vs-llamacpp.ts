/**
 * `npm run bench -- vs-llamacpp` (issue #18): lonas against llama.cpp on the same random 135M-shape model, per
 * format, decode and prefill tokens/s at 1 and 2 threads, interleaved rounds.
 *
 * llama.cpp: llama-bench, built natively from node-llama-cpp 3.21.1's bundled source (bench/llamacpp.ts).
 * Model: bench/generation.ts's 135M shape (random N(0, 0.02), norms 1, tied head), saved once as a float32
 * checkpoint with stories260K's tokenizer files; every other file derives from it:
 *
 * | format      | lonas (loaded as `lonas bench` loads it)                 | llama.cpp GGUF                                    |
 * |-------------|----------------------------------------------------------|---------------------------------------------------|
 * | f32         | the float32 checkpoint                                   | `lonas export --type f32` of it                   |
 * | bf16        | the checkpoint saved as BF16 (kept in bfloat16)          | `lonas export --type bf16` of the BF16 checkpoint |
 * | int4_head   | INT4 everything: RTN INT4 g128 projections + LM head     | Q4_0 pure: `lonas export --type q4_0` (bit-exact  |
 * |             | (`lonas quantize --lm-head`), embedding float32 (lookup) | port of ggml's reference quantizer; every matrix) |
 * | int4        | INT4 projections, float32 tied head (GPTQ default)       | Q4_0 default mix: llama-quantize F32 → Q4_0       |
 * | int4_bf16   | (info) int4 with embedding/head stored BF16              | Q4_0 default mix, as int4                         |
 *
 * lonas's INT4 is GPTQ's asymmetric layout (group 128, zero points): it maps exactly onto ggml's Q4_1, not
 * Q4_0 (src/export/gguf/gptq.ts), so the INT4 rows compare formats of about the same bits per weight (GPTQ g128
 * ≈ 4.25, Q4_0 4.5), not identical weights. lonas has no Q6_K/Q8_0 head mix, so the default mix comes from
 * llama.cpp's own llama-quantize (its tied head: Q8_0 here, as 576 is not a multiple of 256).
 *
 * Timing: prefill = `-p 128` (empty context) vs lonas's prompt of 128 tokens (last-position logits); decode =
 * `-n 64 -d 128` vs lonas's 64 decode steps after that prompt (same context lengths). lonas is measured by
 * measureLatency (src/nas/cost.ts, what `lonas bench` runs) in this process with setThreads(t), llama-bench in
 * a child with `-t t -r reps`. Each round runs every (threads, format) pair, both sides, the order of sides and
 * formats alternating between rounds. Per side: the median over rounds, and min–max as the spread. The ratio
 * interval is [min lonas / max llama.cpp, max lonas / min llama.cpp]: when it holds 1 the verdict is "≈ 1×".
 * Options: --rounds N (3), --reps N (3, per side per round; odd, as measureLatency's median is the upper one), --threads 1,2, --formats f32,bf16,…,
 * --compute f32|bf16 (f32: the bf16 weights' prefill widens them to float32, exact; bf16: it rounds x to bfloat16 and
 * multiplies with bf16 dot products, float32 accumulation — the approximation llama.cpp's BF16 makes; only the bf16
 * format's lonas side, as `lonas bench --compute bf16` would).
 * Last stdout line: JSON; `ratio` = the smallest median decode ratio (lonas / llama.cpp) over the formats
 * (the info row left out), `goals_met` per goal of issue #18.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setThreads } from '../src/kernels/index.ts';
import { bf16Compute, GEMM_COMPUTES, int4Compute, setGemmCompute } from '../src/kernels/compute-mode.ts';
import type { GemmCompute } from '../src/kernels/compute-mode.ts';
import { exportGguf } from '../src/export/gguf/convert.ts';
import type { GgufOutType } from '../src/export/gguf/convert.ts';
import { copyTokenizerFiles, loadLlama, saveModelDir } from '../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { measureLatency } from '../src/nas/cost.ts';
import { ASSETS } from '../test/helpers/assets.ts';
import { backendSummary, log, machineBusy, median, round } from './common.ts';
import { loadForInference, writeCompressed } from './compressed-models.ts';
import { buildSmolModel } from './generation.ts';
import { ensureLlamaCpp, llamaBench, llamaQuantize } from './llamacpp.ts';
import type { LlamaCppTools } from './llamacpp.ts';

const SEED = 1234,
  PROMPT = 128,
  GEN = 64;

const FORMATS = {
  f32: { lonas: 'float32', llama: 'F32 (lonas export)', info: false },
  bf16: { lonas: 'bf16 checkpoint, kept in bf16', llama: 'BF16 (lonas export)', info: false },
  int4_head: { lonas: 'INT4 everything (--lm-head)', llama: 'Q4_0 pure (lonas export)', info: false },
  int4: { lonas: 'INT4 projections, head float32', llama: 'Q4_0 default mix (llama-quantize)', info: false },
  int4_bf16: { lonas: 'INT4 projections, head bf16', llama: 'Q4_0 default mix (llama-quantize)', info: true },
} as const;
type Format = keyof typeof FORMATS;

interface Options {
  rounds: number;
  reps: number;
  threads: number[];
  formats: Format[];
  /** GEMM compute mode of the bf16 format's lonas side (prefill) */
  compute: GemmCompute;
}

function parseArgs(args: string[]): Options {
  const o: Options = { rounds: 3, reps: 3, threads: [1, 2], formats: Object.keys(FORMATS) as Format[], compute: 'f32' };
  const ints = (key: string, s: string | undefined) =>
    (s ?? '').split(',').map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${key} needs integers ≥ 1, got '${s}'`);
      return n;
    });
  for (let i = 0; i < args.length; i += 2) {
    const [key, value] = [args[i], args[i + 1]];
    if (key === '--rounds') o.rounds = ints(key, value)[0];
    else if (key === '--reps') o.reps = ints(key, value)[0];
    else if (key === '--threads') o.threads = ints(key, value);
    else if (key === '--compute') {
      if (!GEMM_COMPUTES.includes(value as GemmCompute)) throw new Error(`--compute: expected f32 or bf16, got '${value}'`);
      o.compute = value as GemmCompute;
    } else if (key === '--formats') {
      o.formats = (value ?? '').split(',') as Format[];
      const bad = o.formats.filter((f) => !(f in FORMATS));
      if (bad.length) throw new Error(`--formats: unknown ${bad.join(', ')} (valid: ${Object.keys(FORMATS).join(', ')})`);
    } else
      throw new Error(
        `unknown option '${key}' (valid: --rounds N --reps N --threads 1,2 --formats ${Object.keys(FORMATS).join(',')} --compute f32|bf16)`,
      );
  }
  return o;
}

interface Prepared {
  model: LlamaModel;
  gguf: string;
  /** tensor types of the GGUF file by count, for the quantized ones */
  gguf_types?: Record<string, number>;
}

/** Writes every format for both engines under `dir`: lonas model directories (loaded) and GGUF files. */
function prepare(dir: string, formats: Format[], tools: LlamaCppTools): Map<Format, Prepared> {
  const f32Dir = join(dir, 'f32');
  log('vs-llamacpp: building the random 135M-shape model (seed 1234) and its float32 checkpoint…');
  saveModelDir(f32Dir, buildSmolModel(SEED, PROMPT + GEN + 16));
  copyTokenizerFiles(join(ASSETS, 'models', 'stories260K', 'hf-f32'), f32Dir);
  const ggufOf = (modelDir: string, type: GgufOutType) => {
    const out = join(dir, `${type}.gguf`);
    const t0 = performance.now();
    const r = exportGguf(modelDir, out, type);
    log(`  lonas export --type ${type}: ${(r.bytes / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return out;
  };
  const f32Gguf = ggufOf(f32Dir, 'f32');
  let mix: { gguf: string; types: Record<string, number> } | undefined;
  const defaultMix = () => {
    if (!mix) {
      const gguf = join(dir, 'q4_0-default-mix.gguf');
      mix = { gguf, types: llamaQuantize(tools, f32Gguf, gguf, 'Q4_0', false) };
      log(`  llama-quantize F32 → Q4_0 (default mix): ${JSON.stringify(mix.types)}`);
    }
    return mix;
  };
  const out = new Map<Format, Prepared>();
  for (const f of formats) {
    log(`vs-llamacpp: preparing ${f} (${FORMATS[f].lonas} vs ${FORMATS[f].llama})…`);
    if (f === 'f32') out.set(f, { model: loadForInference(f32Dir), gguf: f32Gguf });
    else if (f === 'bf16') {
      const bf16Dir = join(dir, 'bf16');
      saveModelDir(bf16Dir, loadLlama(f32Dir, { weights: 'f32' }), { dtype: 'BF16' });
      copyTokenizerFiles(f32Dir, bf16Dir);
      const model = loadForInference(bf16Dir);
      if (model.weightStorage().f32 !== 0)
        throw new Error('vs-llamacpp: the bf16 checkpoint loaded with float32 weights (expected them kept in bfloat16)');
      out.set(f, { model, gguf: ggufOf(bf16Dir, 'bf16') });
    } else if (f === 'int4_head') {
      const model = loadForInference(writeCompressed(f32Dir, 'int4_head', join(dir, 'int4_head')));
      out.set(f, { model, gguf: ggufOf(f32Dir, 'q4_0') });
    } else {
      const model = loadForInference(writeCompressed(f32Dir, f, join(dir, f)));
      const m = defaultMix();
      out.set(f, { model, gguf: m.gguf, gguf_types: m.types });
    }
  }
  return out;
}

interface Sample {
  prefill: number;
  decode: number;
}

/** median and min–max of per-round tokens/s */
const spread = (xs: number[]) => ({ median: round(median(xs), 1), min: round(Math.min(...xs), 1), max: round(Math.max(...xs), 1) });

/** lonas / llama.cpp: the ratio of medians and the interval of the spreads; "≈ 1×" when that interval holds 1. */
function ratioOf(ours: number[], theirs: number[]) {
  const r = median(ours) / median(theirs),
    lo = Math.min(...ours) / Math.max(...theirs),
    hi = Math.max(...ours) / Math.min(...theirs);
  return { ratio: round(r, 3), lo: round(lo, 3), hi: round(hi, 3), verdict: lo <= 1 && hi >= 1 ? '≈ 1×' : `${r.toFixed(2)}×` };
}

export async function main(args: string[]): Promise<unknown> {
  const o = parseArgs(args);
  const { backend, coreType } = backendSummary();
  const tools = await ensureLlamaCpp();
  const dir = mkdtempSync(join(tmpdir(), 'lonas-bench-vs-llamacpp-'));
  try {
    const prepared = prepare(dir, o.formats, tools);
    const busy = await machineBusy();
    log(
      `vs-llamacpp: prefill ${PROMPT}, decode ${GEN} at depth ${PROMPT}; ${o.rounds} rounds × ${o.reps} reps per side; threads ${o.threads.join(',')}; ` +
        `lonas compute INT4 ${int4Compute()}, bf16 ${bf16Compute()}, bf16 prefill GEMM ${o.compute}; load ${busy.load1}, busy ${busy.busy_pct_before}%`,
    );
    const samples = new Map<string, { lonas: Sample[]; llama: Sample[]; model_type?: string }>();
    const key = (f: Format, t: number) => `${f}@${t}`;
    for (let r = 0; r < o.rounds; r++) {
      const formats = r % 2 ? [...o.formats].reverse() : o.formats;
      for (const t of o.threads) {
        setThreads(t);
        for (const f of formats) {
          const p = prepared.get(f)!;
          const s = samples.get(key(f, t)) ?? { lonas: [], llama: [] };
          samples.set(key(f, t), s);
          const lonas = () => {
            // --compute applies to the bf16 weights only (f32 stays exact like llama.cpp's F32; INT4 ignores it)
            if (f === 'bf16') setGemmCompute(o.compute);
            try {
              const lat = measureLatency(p.model, { promptLen: PROMPT, genLen: GEN, repeats: o.reps, warmup: 1 });
              s.lonas.push({ prefill: lat.prefillTokensPerSecond, decode: lat.decodeTokensPerSecond });
            } finally {
              setGemmCompute('f32');
            }
          };
          const llama = () => {
            const b = llamaBench(tools, p.gguf, { threads: t, reps: o.reps, prompt: PROMPT, gen: GEN, depth: PROMPT });
            s.llama.push({ prefill: b.prefill_tok_s, decode: b.decode_tok_s });
            s.model_type = b.model_type;
          };
          for (const side of r % 2 ? [llama, lonas] : [lonas, llama]) side();
          const [a, b] = [s.lonas[s.lonas.length - 1], s.llama[s.llama.length - 1]];
          log(
            `  round ${r + 1}/${o.rounds} ${t}t ${f.padEnd(9)} decode ${a.decode.toFixed(1)} vs ${b.decode.toFixed(1)} tok/s, prefill ${a.prefill.toFixed(0)} vs ${b.prefill.toFixed(0)}`,
          );
        }
      }
    }
    return report(o, prepared, samples, key, { backend, coreType, busy, tools });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(
  o: Options,
  prepared: Map<Format, Prepared>,
  samples: Map<string, { lonas: Sample[]; llama: Sample[]; model_type?: string }>,
  key: (f: Format, t: number) => string,
  env: { backend: string; coreType: string | undefined; busy: { load1: number; busy_pct_before: number }; tools: LlamaCppTools },
): unknown {
  const formats: Record<string, unknown> = {};
  const decodeRatios: Record<string, Record<number, number>> = {};
  const prefillRatios: Record<string, Record<number, number>> = {};
  const scaling: Record<string, { lonas: number; llama_cpp: number }> = {};
  const rows: string[] = [];
  for (const f of o.formats) {
    const perThread: Record<number, unknown> = {};
    decodeRatios[f] = {};
    prefillRatios[f] = {};
    for (const t of o.threads) {
      const s = samples.get(key(f, t))!;
      const pick = (xs: Sample[], m: keyof Sample) => xs.map((x) => x[m]);
      const decode = ratioOf(pick(s.lonas, 'decode'), pick(s.llama, 'decode'));
      const prefill = ratioOf(pick(s.lonas, 'prefill'), pick(s.llama, 'prefill'));
      decodeRatios[f][t] = decode.ratio;
      prefillRatios[f][t] = prefill.ratio;
      perThread[t] = {
        lonas: { decode_tok_s: spread(pick(s.lonas, 'decode')), prefill_tok_s: spread(pick(s.lonas, 'prefill')) },
        llama_cpp: {
          decode_tok_s: spread(pick(s.llama, 'decode')),
          prefill_tok_s: spread(pick(s.llama, 'prefill')),
          model_type: s.model_type,
        },
        decode,
        prefill,
      };
      const sd = spread(pick(s.lonas, 'decode')),
        ld = spread(pick(s.llama, 'decode'));
      const sp = spread(pick(s.lonas, 'prefill')),
        lp = spread(pick(s.llama, 'prefill'));
      rows.push(
        `| ${f}${FORMATS[f].info ? ' (info)' : ''} | ${t} | ${sd.median} [${sd.min}–${sd.max}] | ${ld.median} [${ld.min}–${ld.max}] | ${decode.ratio} [${decode.lo}–${decode.hi}] ${decode.verdict} ` +
          `| ${sp.median} [${sp.min}–${sp.max}] | ${lp.median} [${lp.min}–${lp.max}] | ${prefill.ratio} [${prefill.lo}–${prefill.hi}] ${prefill.verdict} |`,
      );
    }
    if (o.threads.includes(1) && o.threads.includes(2)) {
      const med = (t: number, side: 'lonas' | 'llama') => median(samples.get(key(f, t))![side].map((x) => x.decode));
      scaling[f] = { lonas: round(med(2, 'lonas') / med(1, 'lonas'), 3), llama_cpp: round(med(2, 'llama') / med(1, 'llama'), 3) };
    }
    formats[f] = {
      lonas: FORMATS[f].lonas,
      llama_cpp: FORMATS[f].llama,
      info: FORMATS[f].info,
      gguf_types: prepared.get(f)!.gguf_types,
      threads: perThread,
    };
  }
  log(
    '\n| format | threads | lonas decode tok/s | llama.cpp decode | decode lonas/llama.cpp | lonas prefill tok/s | llama.cpp prefill | prefill lonas/llama.cpp |',
  );
  log('|---|---|---|---|---|---|---|---|');
  for (const row of rows) log(row);
  for (const [f, s] of Object.entries(scaling)) log(`  2-thread / 1-thread decode, ${f}: lonas ${s.lonas}, llama.cpp ${s.llama_cpp}`);
  log('(medians over rounds [min–max]; a shared, noisy machine widens the spreads: compare medians over reruns)');
  const counted = o.formats.filter((f) => !FORMATS[f].info);
  const allDecode = counted.flatMap((f) => Object.values(decodeRatios[f]));
  const atLeast = (fs: Format[], table: Record<string, Record<number, number>>, x: number) =>
    fs.every((f) => !o.formats.includes(f) || Object.values(table[f]).every((r) => r >= x));
  return {
    bench: 'vs-llamacpp',
    model: '135M shape (SmolLM-135M sizes), random N(0, 0.02) weights, tied head',
    llama_cpp: {
      node_llama_cpp: env.tools.version,
      commit: env.tools.commit,
      build: env.tools.dir,
      flags: 'GGML_NATIVE=ON LLAMA_CURL=OFF Release, -mno-amx-*',
    },
    lonas_compute: { int4: int4Compute(), bf16: bf16Compute(), bf16_prefill_gemm: o.compute },
    backend: env.backend,
    openblas_coretype: env.coreType ?? null,
    load1: env.busy.load1,
    busy_pct_before: env.busy.busy_pct_before,
    rounds: o.rounds,
    reps: o.reps,
    prompt: PROMPT,
    decode_tokens: GEN,
    formats,
    decode_scaling_2t_over_1t: scaling,
    goals_met: {
      decode_f32_bf16_int4_everything_ge_1: atLeast(['f32', 'bf16', 'int4_head'], decodeRatios, 1),
      decode_int4_everything_ge_1_2_stretch: atLeast(['int4_head'], decodeRatios, 1.2),
      decode_int4_projections_ge_1: atLeast(['int4'], decodeRatios, 1),
      prefill_ge_1_every_format: atLeast(counted, prefillRatios, 1),
      decode_scaling_ge_llama_cpp: counted.every((f) => !scaling[f] || scaling[f].lonas >= scaling[f].llama_cpp),
    },
    ratio: round(Math.min(...allDecode), 3),
    ratio_meaning: 'smallest median decode tokens/s ratio lonas / llama.cpp over the formats and thread counts (> 1: lonas faster)',
  };
}
