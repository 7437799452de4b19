/**
 * Inference speed on a random model with the shapes of a 135M-parameter Llama (SmolLM-135M: hidden 576,
 * 30 layers, 9 heads / 3 KV heads, head_dim 64, MLP 1536, vocab 49152, tied embeddings), batch 1, lonas vs a
 * PyTorch eager loop with a KV cache (bench/torch/generation.py), at each thread count. Two benches:
 *
 *  - `decode`: after a 128-token prompt (prefilled, untimed), greedy decoding of N new tokens (default 32) with
 *    the KV cache: tokens/s = N / time of the N one-token forwards + argmax. The random model is written as a
 *    BF16 checkpoint (as Hugging Face checkpoints usually are) and lonas loads it twice: weights 'bf16' (kept in
 *    bfloat16, the default for a BF16 checkpoint) and weights 'f32' (upcast at load) — the same values, so the
 *    same math. PyTorch runs the same kind of checkpoint upcast to float32 (its eager default) and in
 *    torch.bfloat16 (its own bf16 path, which also rounds activations). `ratio` is lonas bf16 against the FASTER
 *    PyTorch variant. Also reported as a fraction of the memory-bandwidth bound (each token streams every
 *    weight once: bytes / 12.4 GB/s at 1 thread, 22.3 GB/s at 2; architecture.md).
 *  - `prefill`: one forward of the 128-token prompt into an empty cache, logits of the last position only
 *    (as generation needs), + argmax: tokens/s = 128 / time. lonas runs the float32 model twice, interleaved:
 *    `f32` (exact) and `bf16` (the `--compute bf16` mode: the projections on the bf16 GEMM, the weights rounded
 *    to bf16 once, in the warm-up); `ratio` is f32's, `ratio_bf16` bf16's, `bf16_vs_f32` their quotient.
 *
 * PyTorch is measured in several formulations of the one-row products (torch.mv, F.linear, fused q/k/v and
 * gate/up mv; in bf16 torch.mv and F.linear) and its best median is the baseline. Weights: N(0, 0.02), norms 1; the two sides draw them
 * from different generators (same distribution; speed does not depend on the values). The prompt ids are
 * the same on both sides.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/tensor/index.ts';
import { setThreads } from '../src/kernels/index.ts';
import { setGemmCompute } from '../src/kernels/compute-mode.ts';
import type { GemmCompute } from '../src/kernels/compute-mode.ts';
import { LlamaModel } from '../src/models/llama/model.ts';
import { uniformConfig } from '../src/models/llama/config.ts';
import { loadLlama, saveModelDir } from '../src/models/llama/checkpoint.ts';
import { argmax } from '../src/models/llama/generate.ts';
import {
  backendSummary,
  log,
  machine,
  machineBusy,
  median,
  min,
  nowMs,
  parseOptions,
  randomLlamaWeights,
  round,
  runTorch,
} from './common.ts';

/** SmolLM-135M's shape. */
export const SMOL_SHAPE = { layers: 30, hidden: 576, heads: 9, kvHeads: 3, headDim: 64, intermediate: 1536, vocab: 49152 };
export const SMOL_EPS = 1e-5,
  SMOL_THETA = 1e4,
  SMOL_STD = 0.02;
const SEED = 1234;
const PROMPT_TOKENS = 128;
/** Memory bandwidth measured on this machine (architecture.md), bytes/s, by thread count. */
const BANDWIDTH: Record<number, number> = { 1: 12.4e9, 2: 22.3e9 };

/** The 135M-shape Llama with random N(0, std) weights, norms 1, tied head; every tensor frozen. */
export function buildSmolModel(seed: number, maxPositions = 2048): LlamaModel {
  const s = SMOL_SHAPE,
    C = s.hidden,
    D = s.headDim;
  const config = uniformConfig({
    vocabSize: s.vocab,
    hiddenSize: C,
    headDim: D,
    numLayers: s.layers,
    numHeads: s.heads,
    numKvHeads: s.kvHeads,
    intermediateSize: s.intermediate,
    rmsNormEps: SMOL_EPS,
    ropeTheta: SMOL_THETA,
    ropeScaling: null,
    maxPositions,
    tieWordEmbeddings: true,
    attentionBias: false,
  });
  return new LlamaModel(config, randomLlamaWeights(config, new Rng(seed), SMOL_STD));
}

/** Bytes of every weight as stored (the tied embedding once): what one decode step must stream from memory. */
export function weightBytes(model: LlamaModel): number {
  return model.weightStorage().bytes;
}

/**
 * The 135M-shape model written as a BF16 checkpoint (its weights rounded to bfloat16, as HF checkpoints are
 * stored) and loaded back twice: kept in bf16 and upcast to float32 — the same values.
 */
function bf16CheckpointModels(seed: number): { bf16: LlamaModel; f32: LlamaModel } {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-bench-bf16-'));
  try {
    saveModelDir(join(dir, 'model'), buildSmolModel(seed), { dtype: 'BF16' });
    const bf16 = loadLlama(join(dir, 'model'), { weights: 'bf16' });
    const f32 = loadLlama(join(dir, 'model'), { weights: 'f32' });
    if (bf16.weightStorage().f32 !== 0) throw new Error('decode bench: the bf16 model has float32 weights');
    return { bf16, f32 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** This bench's own `--name value` option, removed from `args` (the rest go to parseOptions). */
export function takeOption(args: string[], name: string): { value: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== name) {
      rest.push(args[i]);
      continue;
    }
    value = args[++i];
    if (value === undefined) throw new Error(`${name} needs a value`);
  }
  return { value, rest };
}

export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a positive integer, got '${value}'`);
  return n;
}

type Mode = 'decode' | 'prefill';

/** tokens/s samples of lonas: `iters` timed runs after `warmup` untimed ones. */
function measureOurs(
  model: LlamaModel,
  mode: Mode,
  prompt: Int32Array,
  newTokens: number,
  threads: number,
  warmup: number,
  iters: number,
): { tokS: number[]; tokens: number[] } {
  setThreads(threads);
  const T = prompt.length;
  const tokS: number[] = [];
  let tokens: number[] = [];
  for (let it = 0; it < warmup + iters; it++) {
    const cache = model.newCache(1, T + newTokens);
    const t0 = nowMs();
    let tok = argmax(model.forwardCached(prompt, 1, T, cache, { lastOnly: true }).contiguousData());
    const t1 = nowMs();
    if (mode === 'prefill') {
      if (it >= warmup) tokS.push((T * 1000) / (t1 - t0));
      continue;
    }
    const out = [tok];
    const t2 = nowMs();
    for (let n = 0; n < newTokens; n++) {
      tok = argmax(model.forwardCached(Int32Array.of(tok), 1, 1, cache).contiguousData());
      out.push(tok);
    }
    const t3 = nowMs();
    tokens = out;
    if (it >= warmup) tokS.push((newTokens * 1000) / (t3 - t2));
  }
  return { tokS, tokens };
}

interface TorchResult {
  tok_s: Record<string, number[]>;
  variants_agree: boolean;
  first_tokens: number[];
  first_tokens_by_variant?: Record<string, number[]>;
  grad_mode: string;
}

/** PyTorch variants that run the model in torch.bfloat16 (bench/torch/generation.py). */
const isBf16Variant = (v: string) => v.startsWith('bf16');

function measureTorch(
  mode: Mode,
  prompt: Int32Array,
  newTokens: number,
  threads: number,
  warmup: number,
  iters: number,
  variants: string,
): TorchResult {
  const s = SMOL_SHAPE;
  return runTorch<TorchResult>('generation.py', threads, [
    '--mode',
    mode,
    '--warmup',
    String(warmup),
    '--iters',
    String(iters),
    '--seed',
    String(SEED),
    '--new-tokens',
    String(newTokens),
    '--prompt',
    JSON.stringify([...prompt]),
    '--variants',
    variants,
    '--config',
    JSON.stringify({ ...s, eps: SMOL_EPS, theta: SMOL_THETA, std: SMOL_STD }),
  ]);
}

async function run(mode: Mode, args: string[]): Promise<unknown> {
  const nt = takeOption(args, '--new-tokens');
  const vt = takeOption(nt.rest, '--torch-variants');
  const newTokens = positiveInt('--new-tokens', nt.value, 32);
  const variants = vt.value ?? (mode === 'decode' ? 'mv,linear,fused,bf16,bf16-linear' : 'mv');
  const opts = parseOptions(
    vt.rest,
    mode === 'decode' ? { rounds: 2, iters: 2, warmup: 1, threads: [1, 2] } : { rounds: 3, iters: 4, warmup: 2, threads: [1, 2] },
  );
  const { backend, coreType } = backendSummary();
  const loadBefore = await machineBusy();
  log(
    `${mode}: building the 135M-shape random model${mode === 'decode' ? ' (written as a BF16 checkpoint, loaded as bf16 and as f32)' : ''}…`,
  );
  // decode: lonas's variants by name (the first is the headline); prefill: the float32 model, f32 and bf16 compute
  const smol = mode === 'prefill' ? buildSmolModel(SEED) : null;
  const models: Record<string, LlamaModel> = smol ? { f32: smol, bf16: smol } : bf16CheckpointModels(SEED);
  const compute = (k: string): GemmCompute => (smol && k === 'bf16' ? 'bf16' : 'f32');
  const names = Object.keys(models);
  const bytes = Object.fromEntries(names.map((k) => [k, weightBytes(models[k])]));
  const rng = new Rng(SEED + 1);
  const prompt = Int32Array.from({ length: PROMPT_TOKENS }, () => rng.int(SMOL_SHAPE.vocab));
  log(
    `${mode}: ${JSON.stringify(SMOL_SHAPE)}, weights ${names.map((k) => `${k} ${(bytes[k] / 1e6).toFixed(1)} MB`).join(', ')}; prompt ${PROMPT_TOKENS}` +
      `${mode === 'decode' ? ` + ${newTokens} new tokens; torch variants ${variants}` : ' (last-position logits)'}; backend ${backend}, OPENBLAS_CORETYPE=${coreType}; ` +
      `${opts.rounds} rounds × ${opts.iters} iters (+${opts.warmup} warm-up)`,
  );

  const threads: Record<string, Record<string, unknown>> = {};
  for (const n of opts.threads) {
    const ours: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
    const ourTokens: Record<string, number[]> = {};
    const torch: Record<string, number[]> = {};
    let torchInfo: TorchResult | null = null;
    for (let r = 0; r < opts.rounds; r++) {
      const runOurs = () => {
        for (const k of r % 2 === 0 ? names : [...names].reverse()) {
          setGemmCompute(compute(k));
          const m = measureOurs(models[k], mode, prompt, newTokens, n, opts.warmup, opts.iters);
          setGemmCompute('f32');
          ours[k].push(...m.tokS);
          ourTokens[k] = m.tokens;
        }
      };
      const runTorchSide = () => {
        torchInfo = measureTorch(mode, prompt, newTokens, n, opts.warmup, opts.iters, variants);
        for (const [v, xs] of Object.entries(torchInfo.tok_s)) torch[v] = [...(torch[v] ?? []), ...xs];
      };
      if (r % 2 === 0) {
        runOurs();
        runTorchSide();
      } else {
        runTorchSide();
        runOurs();
      }
      const ov = names.map((k) => `${k} ${median(ours[k]).toFixed(2)}`).join(', ');
      const tv = Object.entries(torch)
        .map(([v, xs]) => `${v} ${median(xs).toFixed(1)}`)
        .join(', ');
      log(`  threads ${n} round ${r + 1}/${opts.rounds}: ours ${ov} tok/s, torch ${tv} tok/s`);
    }
    const bestOf = (keep: (v: string) => boolean) =>
      Object.entries(torch)
        .filter(([v]) => keep(v))
        .sort((a, b) => median(b[1]) - median(a[1]))[0];
    const [bestVariant, best] = bestOf(() => true);
    const head = ours[names[0]];
    const fig: Record<string, unknown> = {
      ours_tok_s: round(median(head), 2),
      torch_tok_s: round(median(best), 2),
      ratio: round(median(head) / median(best)),
      ours_min_tok_s: round(min(head), 2),
      ours_max_tok_s: round(Math.max(...head), 2),
      torch_min_tok_s: round(min(best), 2),
      torch_max_tok_s: round(Math.max(...best), 2),
    };
    if (smol) {
      Object.assign(fig, {
        ours_bf16_tok_s: round(median(ours.bf16), 2),
        ratio_bf16: round(median(ours.bf16) / median(best)),
        bf16_vs_f32: round(median(ours.bf16) / median(ours.f32)),
      });
    }
    if (mode === 'decode') {
      const bw = BANDWIDTH[Math.min(n, 2)];
      const torchF32 = bestOf((v) => !isBf16Variant(v)),
        torchBf16 = bestOf(isBf16Variant);
      Object.assign(fig, {
        ours_f32_tok_s: round(median(ours.f32), 2),
        ours_f32_min_tok_s: round(min(ours.f32), 2),
        ours_f32_max_tok_s: round(Math.max(...ours.f32), 2),
        ...(torchF32
          ? {
              torch_f32_tok_s: round(median(torchF32[1]), 2),
              torch_f32_variant: torchF32[0],
              ratio_f32: round(median(ours.f32) / median(torchF32[1])),
            }
          : {}),
        ...(torchBf16 ? { torch_bf16_tok_s: round(median(torchBf16[1]), 2), torch_bf16_variant: torchBf16[0] } : {}),
        torch_variant: bestVariant,
        torch_variants_tok_s: Object.fromEntries(Object.entries(torch).map(([v, xs]) => [v, round(median(xs), 2)])),
        bandwidth_gb_s: bw / 1e9,
        bound_tok_s: round(bw / bytes.bf16, 2),
        bound_f32_tok_s: round(bw / bytes.f32, 2),
        ours_frac_of_bound: round(median(ours.bf16) / (bw / bytes.bf16)),
        ours_f32_frac_of_bound: round(median(ours.f32) / (bw / bytes.f32)),
        torch_frac_of_bound: round(median(best) / (bw / (isBf16Variant(bestVariant) ? bytes.bf16 : bytes.f32))),
        ours_first_tokens: ourTokens.bf16.slice(0, 8),
        ours_f32_first_tokens: ourTokens.f32.slice(0, 8),
        ours_bf16_f32_tokens_agree: ourTokens.bf16.every((t, i) => t === ourTokens.f32[i]),
        torch_first_tokens: torchInfo!.first_tokens,
        torch_variants_agree: torchInfo!.variants_agree,
      });
    }
    threads[n] = fig;
  }
  const first = threads[opts.threads[0]];
  const compared =
    mode === 'decode'
      ? 'lonas with the BF16 checkpoint kept in bfloat16 (ours_tok_s) / the faster PyTorch variant (float32 upcast or torch.bfloat16), decode tokens/s (medians)'
      : `ours / torch ${mode} tokens/s (medians), float32 weights`;
  return {
    bench: mode,
    shape: SMOL_SHAPE,
    tied_embeddings: true,
    weight_mb: Object.fromEntries(names.map((k) => [k, round(bytes[k] / 1e6, 1)])),
    prompt_tokens: PROMPT_TOKENS,
    ...(mode === 'decode' ? { new_tokens: newTokens } : {}),
    samples_per_side: opts.rounds * opts.iters,
    threads,
    ours_tok_s: first.ours_tok_s,
    torch_tok_s: first.torch_tok_s,
    ratio: first.ratio,
    ...(smol ? { ours_bf16_tok_s: first.ours_bf16_tok_s, bf16_vs_f32: first.bf16_vs_f32 } : {}),
    ...(mode === 'decode'
      ? {
          ours_f32_tok_s: first.ours_f32_tok_s,
          torch_f32_tok_s: first.torch_f32_tok_s,
          torch_bf16_tok_s: first.torch_bf16_tok_s,
          ours_frac_of_bound: first.ours_frac_of_bound,
        }
      : {}),
    ratio_meaning: `${compared} at ${opts.threads[0]} thread(s); > 1 means lonas is faster; goal ≥ ${mode === 'decode' ? '1.5' : '1.0'}`,
    backend,
    coreType,
    machine: { ...loadBefore, load1_after: machine().load1 },
  };
}

export function mainDecode(args: string[]): Promise<unknown> {
  return run('decode', args);
}

export function mainPrefill(args: string[]): Promise<unknown> {
  return run('prefill', args);
}
