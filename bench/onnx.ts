/**
 * `npm run bench -- onnx` (issue 19): greedy decode tokens/s of onnxruntime-node on lonas's ONNX export
 * against lonas on the same model, same run, batch 1 with the KV cache.
 *
 * The model is the 135M-shape random Llama (bench/generation.ts: 30 layers, hidden 576, 9 heads / 3 KV
 * heads, MLP 1536, vocabulary 49152, tied head), big enough that per-call overhead does not dominate.
 * Formats: f32 (the float checkpoint, exported as is), and with --formats f32,int4 also int4 (every
 * projection RTN-INT4, group 128, in the GPTQ layout `lonas quantize` writes — bench/compressed-models.ts —
 * exported with --int4 as MatMulNBits; lonas runs it with its INT4 kernel). Both engines run on the same thread count.
 * After a 128-token prompt, tokens/s = N / time of N single-token steps (each with an argmax over the
 * vocabulary): lonas through generate() (time between its first and N+1-th new token), onnxruntime
 * through the export's past_key_values → present cache (test/helpers/onnx-runtime.ts). The two sides
 * alternate within each round; figures are medians over rounds × iters, with min and max.
 *
 * onnxruntime-node comes from the test engines (test/engines/onnx, installed by scripts/test.sh).
 * Options: --rounds N (3) --iters N (1) --warmup N (1) --threads N (1) --new-tokens N (32) --formats f32|int4|f32,int4
 * (default f32: with int4 too, the run takes about twice as long)
 * Last stdout line: JSON; `ratio` = onnxruntime tok/s / lonas tok/s for f32, `ratio_int4` for int4;
 * `greedy_tokens_agree` = how many leading greedy tokens the two engines share (all N+1 expected; random
 * weights have near-ties, so a late flip from float rounding order is possible).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeInfo } from '../src/kernels/api.ts';
import { kernels, setThreads } from '../src/kernels/index.ts';
import { saveModelDir } from '../src/models/llama/checkpoint.ts';
import { generate } from '../src/models/llama/generate.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { Rng } from '../src/tensor/index.ts';
import { exportOnnx } from '../src/export/onnx/export.ts';
import { OrtDecoder } from '../test/helpers/onnx-runtime.ts';
import { loadForInference, writeCompressed } from './compressed-models.ts';
import { backendSummary, log, machineBusy, median, nowMs, round } from './common.ts';
import { SMOL_SHAPE, buildSmolModel, positiveInt, takeOption } from './generation.ts';

const SEED = 1234;
const PROMPT_TOKENS = 128;
type Format = 'f32' | 'int4';

interface Options {
  rounds: number;
  iters: number;
  warmup: number;
  threads: number;
  newTokens: number;
  formats: Format[];
}

function parseArgs(args: string[]): Options {
  const take = (name: string) => {
    const r = takeOption(args, name);
    args = r.rest;
    return r.value;
  };
  const o = {
    rounds: positiveInt('--rounds', take('--rounds'), 3),
    iters: positiveInt('--iters', take('--iters'), 1),
    warmup: Number(take('--warmup') ?? 1),
    threads: positiveInt('--threads', take('--threads'), 1),
    newTokens: positiveInt('--new-tokens', take('--new-tokens'), 32),
    formats: (take('--formats') ?? 'f32').split(',') as Format[],
  };
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error(`--warmup needs an integer ≥ 0, got ${o.warmup}`);
  for (const f of o.formats) if (f !== 'f32' && f !== 'int4') throw new Error(`--formats: unknown format '${f}' (f32, int4)`);
  if (args.length)
    throw new Error(`unknown option '${args[0]}' (valid: --rounds N --iters N --warmup N --threads N --new-tokens N --formats f32,int4)`);
  return o;
}

/** lonas: decode tokens/s of one greedy generation after the prompt, and its tokens. */
function lonasDecode(model: LlamaModel, prompt: number[], n: number): { tokS: number; tokens: number[] } {
  const stamps: number[] = [];
  const tokens = generate(model, [prompt], {
    maxNewTokens: n + 1,
    strategy: { kind: 'greedy' },
    eosIds: [],
    onStep: () => stamps.push(nowMs()),
  })[0];
  return { tokS: (n * 1000) / (stamps[n] - stamps[0]), tokens };
}

/** onnxruntime: the same measurement through the exported KV cache. */
async function ortDecode(dec: OrtDecoder, prompt: number[], n: number): Promise<{ tokS: number; tokens: number[] }> {
  const stamps: number[] = [];
  const tokens = await dec.greedy(prompt, n + 1, [], () => stamps.push(nowMs()));
  return { tokS: (n * 1000) / (stamps[n] - stamps[0]), tokens };
}

const stats = (xs: number[]) => ({
  median: round(median(xs), 2),
  min: round(Math.min(...xs), 2),
  max: round(Math.max(...xs), 2),
  n: xs.length,
});

async function benchFormat(format: Format, f32Dir: string, root: string, prompt: number[], o: Options): Promise<Record<string, unknown>> {
  const dir = writeCompressed(f32Dir, format === 'int4' ? 'int4' : 'f32', join(root, format));
  let t0 = nowMs();
  const exported = exportOnnx({ model: dir, out: join(root, `${format}-onnx`), int4: format === 'int4' });
  log(
    `onnx: ${format} exported in ${((nowMs() - t0) / 1000).toFixed(1)} s (${(exported.weightBytes / 2 ** 20).toFixed(0)} MiB of weights)`,
  );
  const model = loadForInference(dir);
  t0 = nowMs();
  const dec = await OrtDecoder.open(exported.modelFile, o.threads);
  log(`onnx: onnxruntime session created in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  const ours: number[] = [],
    ort: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    const sides = r % 2 === 0 ? ['lonas', 'ort'] : ['ort', 'lonas'];
    for (const side of sides) {
      for (let k = 0; k < o.warmup + o.iters; k++) {
        const res = side === 'lonas' ? lonasDecode(model, prompt, o.newTokens) : await ortDecode(dec, prompt, o.newTokens);
        if (k >= o.warmup) (side === 'lonas' ? ours : ort).push(res.tokS);
      }
    }
    log(`onnx: ${format} round ${r + 1}/${o.rounds}: lonas ${round(median(ours), 1)} tok/s, onnxruntime ${round(median(ort), 1)} tok/s`);
  }
  // both engines decode the same model: the greedy tokens agree (random weights: near-ties may flip late tokens)
  const a = lonasDecode(model, prompt, o.newTokens).tokens,
    b = (await ortDecode(dec, prompt, o.newTokens)).tokens;
  const agree = a.findIndex((t, i) => t !== b[i]);
  return {
    lonas_tok_s: stats(ours),
    onnxruntime_tok_s: stats(ort),
    ratio: round(median(ort) / median(ours), 3),
    greedy_tokens_agree: agree < 0 ? a.length : agree,
  };
}

export async function main(args: string[]): Promise<unknown> {
  const o = parseArgs(args);
  const backend = backendSummary();
  setThreads(o.threads);
  (kernels() as Partial<NativeInfo>).compressedThreads?.(o.threads);
  const busy = await machineBusy();
  const root = mkdtempSync(join(tmpdir(), 'lonas-bench-onnx-'));
  try {
    const f32Dir = join(root, 'f32-model');
    log('onnx: building the 135M-shape random model…');
    saveModelDir(f32Dir, buildSmolModel(SEED, 512), { overwrite: true });
    const rng = new Rng(SEED + 1);
    const prompt = [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, () => 3 + Math.floor(rng.uniform() * (SMOL_SHAPE.vocab - 3)))];
    const results: Record<string, unknown> = {};
    for (const f of o.formats) results[f] = await benchFormat(f, f32Dir, root, prompt, o);
    const ratioOf = (f: Format) => (results[f] as { ratio: number } | undefined)?.ratio ?? null;
    return {
      bench: 'onnx',
      shape: SMOL_SHAPE,
      prompt_tokens: PROMPT_TOKENS,
      new_tokens: o.newTokens,
      threads: o.threads,
      rounds: o.rounds,
      iters: o.iters,
      backend,
      machine: busy,
      ...results,
      ratio: ratioOf('f32') ?? ratioOf('int4'),
      ratio_int4: ratioOf('int4'),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
