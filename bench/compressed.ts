/**
 * `npm run bench -- compressed` (issue #7): end-to-end greedy decoding tokens/s of the 135M-shape random
 * Llama (bench/generation.ts) with float32, INT4 (GPTQ layout, group 128) and 50%-unstructured-sparse
 * projections, measured in the same run, batch 1 with the KV cache.
 *
 * The compressed models are built cheaply (round-to-nearest INT4, magnitude pruning; no calibration, speed
 * does not depend on the values) into the formats `lonas quantize` / `lonas sparsify` write, saved, and
 * loaded back exactly as `lonas generate` loads a model (bench/compressed-models.ts). Decoding runs through
 * `generate()` (greedy, no EOS): after the 128-token prompt's prefill, tokens/s = N / time between the
 * first and the (N+1)-th new token (N forwards of one token + argmax over the vocabulary each).
 *
 * Options: --rounds N --iters N --warmup N (per format and round; formats alternate order between rounds),
 * --threads 1,2,2/1 ("n": OpenBLAS and the compressed kernels' matrix-vector pool on n threads; "b/c": b and
 * c; lonas's default at 2 cores is OpenBLAS 2, compressed pool 1), --new-tokens N (32), --dir DIR (keep
 * and reuse the model directories there instead of a temporary directory), --formats sparse,int4,… (build and
 * time only those, f32 always included; default all five), --profile (also time every
 * native kernel call site of one decode per format: where a token's time goes).
 *
 * A fourth model, int4_bf16, is the INT4 one with its embedding / tied LM head (and norms) stored in BF16 and
 * kept in bfloat16 at load (what `lonas extract --dtype bf16` writes for a GPTQ model): the LM head is not
 * compressed in the others, and this measures what its float32 bytes cost. A fifth, int4_head, quantises the
 * LM head to INT4 as well (untied; the embedding stays float32), as `lonas quantize --lm-head` writes it.
 * Each format's LM head is also timed alone (`lm_head_ms`, `lm_head_share`, `ratio_without_lm_head`).
 *
 * Last stdout line: one JSON object; `ratio` = int4_head tok/s / f32 tok/s (medians, first thread
 * configuration): the INT4 model, every linear layer INT4 (the embedding, a lookup of one row per token, stays
 * float32); goal ≥ 3. `ratio_int4_projections_only` = int4 / f32: `lonas quantize` without --lm-head, the
 * float32 LM head then being ~43% of a token's time. `ratio_sparse` = sparse / f32 (goal ≥ 1.3),
 * `ratio_int4_bf16` (information).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeInfo } from '../src/kernels/api.ts';
import { kernels, setThreads } from '../src/kernels/index.ts';
import { saveModelDir } from '../src/models/llama/checkpoint.ts';
import { generate } from '../src/models/llama/generate.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { Rng, Tensor, noGrad } from '../src/tensor/index.ts';
import { FORMATS, INT4_GROUP, SPARSITY, describeLayers, loadForInference, writeCompressed } from './compressed-models.ts';
import type { Format, LayerReport } from './compressed-models.ts';
import { backendSummary, log, machine, machineBusy, median, nowMs, round } from './common.ts';
import { SMOL_SHAPE, buildSmolModel } from './generation.ts';
import { installKernelTimers, kernelTimes, resetKernelTimers } from './kernel-timers.ts';

const SEED = 1234;
const PROMPT_TOKENS = 128;

interface Options {
  rounds: number;
  iters: number;
  warmup: number;
  threads: string[];
  newTokens: number;
  dir?: string;
  profile: boolean;
  /** the formats to build and time (f32, the baseline of every ratio, always included) */
  formats: Format[];
}

export function parseArgs(args: string[]): Options {
  const o: Options = { rounds: 3, iters: 2, warmup: 1, threads: ['1', '2'], newTokens: 32, profile: false, formats: [...FORMATS] };
  for (let i = 0; i < args.length; i++) {
    const key = args[i],
      value = args[i + 1];
    const int = (s: string | undefined, min = 1): number => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < min) throw new Error(`${key} needs an integer ≥ ${min}, got '${s}'`);
      return n;
    };
    if (key === '--profile') {
      o.profile = true;
      continue;
    }
    if (value === undefined) throw new Error(`${key} needs a value`);
    if (key === '--rounds') o.rounds = int(value);
    else if (key === '--iters') o.iters = int(value);
    else if (key === '--warmup') o.warmup = int(value, 0);
    else if (key === '--new-tokens') o.newTokens = int(value);
    else if (key === '--dir') o.dir = value;
    else if (key === '--formats') {
      const picked = value.split(',') as Format[];
      for (const f of picked) if (!FORMATS.includes(f)) throw new Error(`--formats: '${f}' is not one of ${FORMATS.join(', ')}`);
      o.formats = FORMATS.filter((f) => f === 'f32' || picked.includes(f));
    } else if (key === '--threads') {
      o.threads = value.split(',');
      for (const t of o.threads) t.split('/').forEach((s) => int(s));
    } else
      throw new Error(
        `unknown option '${key}' (valid: --rounds N --iters N --warmup N --threads 1,2,2/1 --new-tokens N --dir DIR --formats ${FORMATS.join(',')} --profile)`,
      );
    i++;
  }
  return o;
}

/** "n" → OpenBLAS and the compressed pool on n threads; "b/c" → b and c. */
function applyThreads(cfg: string): { blas: number; compressed: number } {
  const [blas, compressed = blas] = cfg.split('/').map(Number);
  setThreads(blas);
  (kernels() as Partial<NativeInfo>).compressedThreads?.(compressed);
  return { blas, compressed };
}

interface Sample {
  decodeTokS: number;
  prefillMs: number;
  tokens: number[];
}

/** One greedy generation of newTokens + 1 tokens; `onDecodeStart` runs when the first new token is out. */
function decodeOnce(model: LlamaModel, prompt: number[], newTokens: number, onDecodeStart?: () => void): Sample {
  const stamps: number[] = [];
  const t0 = nowMs();
  const tokens = generate(model, [prompt], {
    maxNewTokens: newTokens + 1,
    strategy: { kind: 'greedy' },
    eosIds: [],
    onStep: () => {
      stamps.push(nowMs());
      if (stamps.length === 1) onDecodeStart?.();
    },
  })[0];
  if (stamps.length !== newTokens + 1) throw new Error(`generation stopped after ${stamps.length} of ${newTokens + 1} tokens`);
  return { decodeTokS: (newTokens * 1000) / (stamps[newTokens] - stamps[0]), prefillMs: stamps[0] - t0, tokens };
}

/** Builds (or reuses under --dir) the model directories, one per format. */
function prepareDirs(root: string, formats: readonly Format[]): Record<Format, string> {
  const f32Dir = join(root, 'f32');
  if (!existsSync(join(f32Dir, 'config.json'))) {
    log('compressed: building the 135M-shape random model (f32)…');
    saveModelDir(f32Dir, buildSmolModel(SEED), { overwrite: true });
  }
  const dirs = { f32: f32Dir } as Record<Format, string>;
  for (const f of formats) {
    if (f === 'f32') continue;
    const d = join(root, f);
    if (!existsSync(join(d, 'config.json'))) {
      const t0 = nowMs();
      const rest = f === 'int4_bf16' ? ', the rest BF16' : f === 'int4_head' ? ', the LM head too (untied)' : '';
      log(
        `compressed: writing the ${f} model (${f === 'sparse' ? `magnitude pruning ${SPARSITY * 100}%` : `RTN INT4, group ${INT4_GROUP}${rest}`})…`,
      );
      writeCompressed(f32Dir, f, d);
      log(`  done in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
    }
    dirs[f] = d;
  }
  return dirs;
}

/** Median time of the LM head alone, one position (float32 in f32 / int4 / sparse, bfloat16 in int4_bf16, INT4 in int4_head). */
function lmHeadMs(model: LlamaModel, reps = 9): number {
  const h = new Tensor(new Float32Array(model.config.hiddenSize).fill(0.5), [1, 1, model.config.hiddenSize]);
  const ms: number[] = [];
  noGrad(() => {
    for (let i = 0; i < reps; i++) {
      const t0 = nowMs();
      model.lmHead.forward(h);
      ms.push(nowMs() - t0);
    }
  });
  return median(ms);
}

function profileDecode(model: LlamaModel, prompt: number[], newTokens: number) {
  resetKernelTimers();
  const s = decodeOnce(model, prompt, newTokens, resetKernelTimers);
  const ks = kernelTimes(newTokens);
  const msPerToken = 1000 / s.decodeTokS;
  const nativeMs = ks.reduce((a, k) => a + k.ms, 0);
  return {
    ms_per_token: round(msPerToken, 2),
    native_ms: round(nativeMs, 2),
    js_and_other_ms: round(msPerToken - nativeMs, 2),
    // the JS between the kernel calls: serial at any thread count (docs/architecture.md, "Threads")
    js_share: round((msPerToken - nativeMs) / msPerToken, 3),
    kernels: ks,
  };
}

type Models = Record<Format, LlamaModel>;
type Layers = Record<Format, LayerReport>;

/** Every format at one thread configuration: interleaved rounds, medians, ratios to f32, the LM head's share. */
function measureThreads(cfg: string, models: Models, layers: Layers, prompt: number[], opts: Options): Record<string, unknown> {
  const t = applyThreads(cfg);
  const tokS = Object.fromEntries(opts.formats.map((f) => [f, [] as number[]])) as Record<Format, number[]>;
  const prefill = Object.fromEntries(opts.formats.map((f) => [f, [] as number[]])) as Record<Format, number[]>;
  const first = {} as Record<Format, number[]>;
  for (const f of opts.formats) for (let w = 0; w < opts.warmup; w++) decodeOnce(models[f], prompt, opts.newTokens);
  for (let r = 0; r < opts.rounds; r++) {
    for (const f of r % 2 === 0 ? opts.formats : [...opts.formats].reverse()) {
      for (let i = 0; i < opts.iters; i++) {
        const s = decodeOnce(models[f], prompt, opts.newTokens);
        tokS[f].push(s.decodeTokS);
        prefill[f].push(s.prefillMs);
        first[f] = s.tokens.slice(0, 8);
      }
    }
    log(
      `  threads ${cfg} round ${r + 1}/${opts.rounds}: ` +
        opts.formats.map((f) => `${f} ${median(tokS[f]).toFixed(2)}`).join(', ') +
        ' tok/s (medians so far)',
    );
  }
  const msTok = (f: Format) => 1000 / median(tokS[f]);
  const fig: Record<string, unknown> = {};
  for (const f of opts.formats) {
    const head = lmHeadMs(models[f]);
    fig[f] = {
      tok_s: round(median(tokS[f]), 2),
      min_tok_s: round(Math.min(...tokS[f]), 2),
      max_tok_s: round(Math.max(...tokS[f]), 2),
      prefill_ms: round(median(prefill[f]), 1),
      weight_gb_s: round((layers[f].decode_weight_bytes * median(tokS[f])) / 1e9, 1),
      // the LM head alone (compressed in int4_bf16 / int4_head only): its share of a token, and the ratio to f32 of everything else
      lm_head_ms: round(head, 2),
      lm_head_share: round(head / msTok(f), 3),
      first_tokens: first[f],
      ...(f === 'f32'
        ? {}
        : {
            ratio: round(median(tokS[f]) / median(tokS.f32), 3),
            ratio_without_lm_head: round((msTok('f32') - lmHeadMs(models.f32)) / (msTok(f) - head), 3),
          }),
    };
  }
  if (opts.profile) fig.profile = Object.fromEntries(opts.formats.map((f) => [f, profileDecode(models[f], prompt, opts.newTokens)]));
  const ratio = (f: Format) => (fig[f] as { ratio: number }).ratio;
  log(
    `  threads ${cfg} (OpenBLAS ${t.blas}, compressed pool ${t.compressed}): ` +
      opts.formats
        .filter((f) => f !== 'f32')
        .map((f) => `${f}/f32 ${ratio(f)}`)
        .join(', '),
  );
  return fig;
}

export async function main(args: string[]): Promise<unknown> {
  const opts = parseArgs(args);
  if (opts.profile) installKernelTimers();
  const { backend, coreType } = backendSummary();
  const isa = (kernels() as Partial<NativeInfo>).compressedIsa?.() ?? 'reference';
  const root = opts.dir ?? mkdtempSync(join(tmpdir(), 'lonas-bench-compressed-'));
  mkdirSync(root, { recursive: true });
  try {
    const dirs = prepareDirs(root, opts.formats);
    const models = Object.fromEntries(opts.formats.map((f) => [f, loadForInference(dirs[f])])) as Models;
    const layers = Object.fromEntries(opts.formats.map((f) => [f, describeLayers(models[f])])) as Layers;
    for (const f of opts.formats)
      log(
        `  ${f}: ${JSON.stringify(layers[f].projections)}, LM head ${layers[f].lm_head.split(':')[0]}; ${(layers[f].decode_weight_bytes / 1e6).toFixed(1)} MB per token (LM head ${(100 * layers[f].lm_head_share_of_decode_bytes).toFixed(0)}%)`,
      );
    const rng = new Rng(SEED + 1);
    const prompt = Array.from({ length: PROMPT_TOKENS }, () => rng.int(SMOL_SHAPE.vocab));
    const loadBefore = await machineBusy();
    log(
      `compressed: prompt ${PROMPT_TOKENS} + ${opts.newTokens} new tokens; backend ${backend}, OPENBLAS_CORETYPE=${coreType}, SIMD ${isa}; ` +
        `${opts.rounds} rounds × ${opts.iters} iters (+${opts.warmup} warm-up) per format; load ${loadBefore.load1}, busy ${loadBefore.busy_pct_before}%`,
    );
    const threads = Object.fromEntries(opts.threads.map((cfg) => [cfg, measureThreads(cfg, models, layers, prompt, opts)]));
    const first = threads[opts.threads[0]] as Record<
      Format,
      { tok_s: number; ratio: number; ratio_without_lm_head: number; lm_head_share: number }
    >;
    const bytes = (f: Format) => layers[f].decode_weight_bytes;
    return {
      bench: 'compressed',
      shape: SMOL_SHAPE,
      tied_embeddings: true,
      prompt_tokens: PROMPT_TOKENS,
      new_tokens: opts.newTokens,
      int4_group: INT4_GROUP,
      sparsity: SPARSITY,
      layers,
      samples_per_format: opts.rounds * opts.iters,
      threads,
      tok_s: Object.fromEntries(opts.formats.map((f) => [f, first[f].tok_s])),
      ratio: first.int4_head?.ratio,
      ratio_int4_projections_only: first.int4?.ratio,
      ratio_sparse: first.sparse?.ratio,
      ratio_int4_bf16: first.int4_bf16?.ratio,
      ratio_without_lm_head: { int4: first.int4?.ratio_without_lm_head, sparse: first.sparse?.ratio_without_lm_head },
      lm_head_share: Object.fromEntries(opts.formats.map((f) => [f, first[f].lm_head_share])),
      bytes_ratio: Object.fromEntries(opts.formats.filter((f) => f !== 'f32').map((f) => [f, round(bytes('f32') / bytes(f), 3)])),
      ratio_meaning:
        `ratio = int4_head / f32 decode tokens/s (medians) at threads ${opts.threads[0]}, int4_head = every linear layer INT4: ` +
        'the 210 projections and the LM head (lonas quantize --lm-head: head untied, the embedding float32), goal ≥ 3; ' +
        'ratio_int4_projections_only = int4 / f32, int4 = every projection INT4 and the tied LM head float32 (lonas quantize without --lm-head, ' +
        'the GPTQ default); ratio_sparse = sparse / f32, goal ≥ 1.3; ratio_int4_bf16 = int4 with the embedding / tied LM head ' +
        'in bf16 (lonas extract --dtype bf16) / f32, for information; bytes_ratio = f32 / format weight bytes streamed per decoded token',
      goals_met: { int4: first.int4_head?.ratio >= 3, int4_projections_only: first.int4?.ratio >= 3, sparse: first.sparse?.ratio >= 1.3 },
      backend,
      coreType,
      simd: isa,
      machine: { ...loadBefore, load1_after: machine().load1 },
    };
  } finally {
    if (!opts.dir) rmSync(root, { recursive: true, force: true });
  }
}
