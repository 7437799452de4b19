/**
 * Inference speed on a random model with the shapes of a 135M-parameter Llama (SmolLM-135M: hidden 576,
 * 30 layers, 9 heads / 3 KV heads, head_dim 64, MLP 1536, vocab 49152, tied embeddings), batch 1, lonas vs a
 * PyTorch eager loop with a KV cache (bench/torch/generation.py), at each thread count. Two benches:
 *
 *  - `decode`: after a 128-token prompt (prefilled, untimed), greedy decoding of N new tokens (default 32) with
 *    the KV cache: tokens/s = N / time of the N one-token forwards + argmax. Also reported as a fraction of the
 *    memory-bandwidth bound (each token streams every f32 weight once: bytes / 12.4 GB/s at 1 thread,
 *    22.3 GB/s at 2; architecture.md).
 *  - `prefill`: one forward of the 128-token prompt into an empty cache, logits of the last position only
 *    (as generation needs), + argmax: tokens/s = 128 / time.
 *
 * PyTorch is measured in several formulations of the one-row products (torch.mv, F.linear, fused q/k/v and
 * gate/up mv) and its best median is the baseline. Weights: N(0, 0.02), norms 1; the two sides draw them
 * from different generators (same distribution; speed does not depend on the values). The prompt ids are
 * the same on both sides.
 */
import { Rng, full } from '../src/tensor/index.ts';
import type { Tensor } from '../src/tensor/index.ts';
import { setThreads } from '../src/kernels/index.ts';
import { LlamaModel, PROJECTIONS, projectionWeightName } from '../src/models/llama/model.ts';
import type { ProjectionName } from '../src/models/llama/model.ts';
import { uniformConfig } from '../src/models/llama/config.ts';
import { argmax } from '../src/models/llama/generate.ts';
import { randomNormal } from '../src/nn/modules.ts';
import { backendSummary, log, machine, machineBusy, median, min, nowMs, parseOptions, round, runTorch } from './common.ts';

/** SmolLM-135M's shape. */
export const SMOL_SHAPE = { layers: 30, hidden: 576, heads: 9, kvHeads: 3, headDim: 64, intermediate: 1536, vocab: 49152 };
export const SMOL_EPS = 1e-5, SMOL_THETA = 1e4, SMOL_STD = 0.02;
const SEED = 1234;
const PROMPT_TOKENS = 128;
/** Memory bandwidth measured on this machine (architecture.md), bytes/s, by thread count. */
const BANDWIDTH: Record<number, number> = { 1: 12.4e9, 2: 22.3e9 };

/** The 135M-shape Llama with random N(0, std) weights, norms 1, tied head; every tensor frozen. */
export function buildSmolModel(seed: number, maxPositions = 2048): LlamaModel {
  const s = SMOL_SHAPE, C = s.hidden, D = s.headDim;
  const config = uniformConfig({
    vocabSize: s.vocab, hiddenSize: C, headDim: D, numLayers: s.layers, numHeads: s.heads, numKvHeads: s.kvHeads,
    intermediateSize: s.intermediate, rmsNormEps: SMOL_EPS, ropeTheta: SMOL_THETA, ropeScaling: null, maxPositions,
    tieWordEmbeddings: true, attentionBias: false,
  });
  const rng = new Rng(seed);
  const w = new Map<string, Tensor>();
  const shapes: Record<ProjectionName, number[]> = {
    q_proj: [s.heads * D, C], k_proj: [s.kvHeads * D, C], v_proj: [s.kvHeads * D, C], o_proj: [C, s.heads * D],
    gate_proj: [s.intermediate, C], up_proj: [s.intermediate, C], down_proj: [C, s.intermediate],
  };
  w.set('model.embed_tokens.weight', randomNormal(rng, [s.vocab, C], SMOL_STD));
  for (let i = 0; i < s.layers; i++) {
    w.set(`model.layers.${i}.input_layernorm.weight`, full([C], 1));
    w.set(`model.layers.${i}.post_attention_layernorm.weight`, full([C], 1));
    for (const p of PROJECTIONS) w.set(`${projectionWeightName(i, p)}.weight`, randomNormal(rng, shapes[p], SMOL_STD));
  }
  w.set('model.norm.weight', full([C], 1));
  return new LlamaModel(config, w);
}

/** float32 bytes of every weight (the tied embedding once): what one decode step must stream from memory. */
export function weightBytes(model: LlamaModel): number {
  let n = 0;
  for (const t of model.namedParameters().values()) n += t.size;
  return 4 * n;
}

/** This bench's own `--name value` option, removed from `args` (the rest go to parseOptions). */
export function takeOption(args: string[], name: string): { value: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== name) { rest.push(args[i]); continue; }
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
function measureOurs(model: LlamaModel, mode: Mode, prompt: Int32Array, newTokens: number, threads: number, warmup: number, iters: number): { tokS: number[]; tokens: number[] } {
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

interface TorchResult { tok_s: Record<string, number[]>; variants_agree: boolean; first_tokens: number[]; grad_mode: string }

function measureTorch(mode: Mode, prompt: Int32Array, newTokens: number, threads: number, warmup: number, iters: number, variants: string): TorchResult {
  const s = SMOL_SHAPE;
  return runTorch<TorchResult>('generation.py', threads, [
    '--mode', mode, '--warmup', String(warmup), '--iters', String(iters), '--seed', String(SEED),
    '--new-tokens', String(newTokens), '--prompt', JSON.stringify([...prompt]), '--variants', variants,
    '--config', JSON.stringify({ ...s, eps: SMOL_EPS, theta: SMOL_THETA, std: SMOL_STD }),
  ]);
}

async function run(mode: Mode, args: string[]): Promise<unknown> {
  const nt = takeOption(args, '--new-tokens');
  const vt = takeOption(nt.rest, '--torch-variants');
  const newTokens = positiveInt('--new-tokens', nt.value, 32);
  const variants = vt.value ?? 'mv,linear,fused';
  const opts = parseOptions(vt.rest, mode === 'decode'
    ? { rounds: 2, iters: 2, warmup: 1, threads: [1, 2] }
    : { rounds: 3, iters: 4, warmup: 2, threads: [1, 2] });
  const { backend, coreType } = backendSummary();
  const loadBefore = await machineBusy();
  log(`${mode}: building the 135M-shape random model…`);
  const model = buildSmolModel(SEED);
  const bytes = weightBytes(model);
  const rng = new Rng(SEED + 1);
  const prompt = Int32Array.from({ length: PROMPT_TOKENS }, () => rng.int(SMOL_SHAPE.vocab));
  log(`${mode}: ${JSON.stringify(SMOL_SHAPE)}, ${(bytes / 1e6).toFixed(1)} MB of f32 weights; prompt ${PROMPT_TOKENS}` +
    `${mode === 'decode' ? ` + ${newTokens} new tokens; torch variants ${variants}` : ' (last-position logits)'}; backend ${backend}, OPENBLAS_CORETYPE=${coreType}; ` +
    `${opts.rounds} rounds × ${opts.iters} iters (+${opts.warmup} warm-up)`);

  const threads: Record<string, Record<string, unknown>> = {};
  for (const n of opts.threads) {
    let ours: number[] = [];
    const torch: Record<string, number[]> = {};
    let torchInfo: TorchResult | null = null;
    let ourTokens: number[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const runOurs = () => {
        const m = measureOurs(model, mode, prompt, newTokens, n, opts.warmup, opts.iters);
        ours = [...ours, ...m.tokS];
        ourTokens = m.tokens;
      };
      const runTorchSide = () => {
        torchInfo = measureTorch(mode, prompt, newTokens, n, opts.warmup, opts.iters, variants);
        for (const [v, xs] of Object.entries(torchInfo.tok_s)) torch[v] = [...(torch[v] ?? []), ...xs];
      };
      if (r % 2 === 0) { runOurs(); runTorchSide(); } else { runTorchSide(); runOurs(); }
      const tv = Object.entries(torch).map(([v, xs]) => `${v} ${median(xs).toFixed(1)}`).join(', ');
      log(`  threads ${n} round ${r + 1}/${opts.rounds}: ours median ${median(ours).toFixed(2)} tok/s, torch ${tv} tok/s`);
    }
    const [bestVariant, best] = Object.entries(torch).sort((a, b) => median(b[1]) - median(a[1]))[0];
    const fig: Record<string, unknown> = {
      ours_tok_s: round(median(ours), 2), torch_tok_s: round(median(best), 2), ratio: round(median(ours) / median(best)),
      ours_min_tok_s: round(min(ours), 2), ours_max_tok_s: round(Math.max(...ours), 2),
      torch_min_tok_s: round(min(best), 2), torch_max_tok_s: round(Math.max(...best), 2),
    };
    if (mode === 'decode') {
      const bw = BANDWIDTH[Math.min(n, 2)];
      const bound = bw / bytes;
      Object.assign(fig, {
        torch_variant: bestVariant,
        torch_variants_tok_s: Object.fromEntries(Object.entries(torch).map(([v, xs]) => [v, round(median(xs), 2)])),
        bandwidth_gb_s: bw / 1e9, bound_tok_s: round(bound, 2),
        ours_frac_of_bound: round(median(ours) / bound), torch_frac_of_bound: round(median(best) / bound),
        ours_first_tokens: ourTokens.slice(0, 8), torch_first_tokens: torchInfo!.first_tokens,
        torch_variants_agree: torchInfo!.variants_agree,
      });
    }
    threads[n] = fig;
  }
  const first = threads[opts.threads[0]];
  return {
    bench: mode, shape: SMOL_SHAPE, tied_embeddings: true, weight_mb: round(bytes / 1e6, 1), prompt_tokens: PROMPT_TOKENS,
    ...(mode === 'decode' ? { new_tokens: newTokens } : {}), samples_per_side: opts.rounds * opts.iters, threads,
    ours_tok_s: first.ours_tok_s, torch_tok_s: first.torch_tok_s, ratio: first.ratio,
    ...(mode === 'decode' ? { ours_frac_of_bound: first.ours_frac_of_bound } : {}),
    ratio_meaning: `ours / torch ${mode} tokens/s (medians) at ${opts.threads[0]} thread(s); > 1 means lonas is faster; goal ≥ ${mode === 'decode' ? '1.5' : '1.0'}`,
    backend, coreType, machine: { ...loadBefore, load1_after: machine().load1 },
  };
}

export function mainDecode(args: string[]): Promise<unknown> {
  return run('decode', args);
}

export function mainPrefill(args: string[]): Promise<unknown> {
  return run('prefill', args);
}
