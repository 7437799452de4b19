/**
 * `npm run bench -- export` (issue #17): decode speed of the same extracted LoNAS sub-network in llama.cpp
 * (exported by `lonas export --type q4_0`, run through node-llama-cpp 3.21.1, CPU) and in lonas (INT4).
 *
 * Model: the 135M-shape random Llama (bench/generation.ts), extracted at a heterogeneous sub-network (MLP
 * width 100 / 75 / 50 % cycling over the layers: llama.cpp's per-layer `deci` architecture). Its float
 * checkpoint is saved with stories260K's tokenizer files (the vocabulary is padded up to 49152 with unused
 * tokens: the timed loop feeds token ids, so the tokenizer's content does not matter), then:
 *  - llama.cpp q4_0: every 2-D tensor q4_0 (the tied embedding / LM head too), F16 KV cache (its default);
 *  - lonas int4: every projection RTN INT4 group 128 (bench/compressed-models.ts), LM head INT4 too
 *    (`int4_head`, as `lonas quantize --lm-head`), embedding float32 (a lookup);
 *  - lonas int4 with the float32 tied head (`int4`, what `lonas quantize` writes by default), for reference.
 * Timing: prompt of 16 tokens, then 32 greedy decode steps; per-token decode time = (last − first token
 * time) / 31. Both sides 1 thread. Rounds interleave the three (order alternating); medians over rounds, and
 * min / max as the spread. Options: --rounds N (5), --threads N (1).
 * Last stdout line: JSON; `ratio` = lonas int4 (INT4 head) decode tok/s ÷ llama.cpp q4_0 decode tok/s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setThreads } from '../src/kernels/index.ts';
import { exportGguf } from '../src/export/gguf/convert.ts';
import { copyTokenizerFiles, saveModelDir } from '../src/models/llama/checkpoint.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { extractMerged } from '../src/nas/extract.ts';
import { resolveSearchSpace } from '../src/nas/search-space.ts';
import type { SearchSpaceSpec } from '../src/nas/search-space.ts';
import { applySubnet } from '../src/nas/subnet.ts';
import { noGrad } from '../src/tensor/index.ts';
import { openGguf } from '../test/engines/llama-cpp/engine.ts';
import { ASSETS } from '../test/helpers/assets.ts';
import { backendSummary, log, machineBusy, median, round } from './common.ts';
import { loadForInference, writeCompressed } from './compressed-models.ts';
import { buildSmolModel } from './generation.ts';

const SEED = 1234,
  PROMPT = 16,
  GEN = 32;
const SPACE = { groups: [{ kind: 'mlp_width', share: 'layer', fractions: [1, 0.75, 0.5] }] } as SearchSpaceSpec;

function parseArgs(args: string[]): { rounds: number; threads: number } {
  const o = { rounds: 5, threads: 1 };
  for (let i = 0; i < args.length; i += 2) {
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${args[i]} needs an integer ≥ 1, got '${args[i + 1]}'`);
    if (args[i] === '--rounds') o.rounds = n;
    else if (args[i] === '--threads') o.threads = n;
    else throw new Error(`unknown option '${args[i]}' (valid: --rounds N --threads N)`);
  }
  return o;
}

/** The heterogeneous sub-network of the 135M shape, as a plain float model. */
function subnetwork(): LlamaModel {
  const supernet = buildSmolModel(SEED, PROMPT + GEN + 8);
  const space = resolveSearchSpace(SPACE, supernet.config, 0);
  applySubnet(supernet, space, Object.fromEntries(space.groups.map((g) => [g.id, g.choices[g.layers[0] % g.choices.length]])));
  return noGrad(() => extractMerged(supernet));
}

const prompt = Array.from({ length: PROMPT }, (_, i) => 3 + ((i * 7919) % 500));

/** lonas: ms per decoded token (greedy over the KV cache, batch 1). */
function lonasDecodeMs(m: LlamaModel): number {
  const cache = m.newCache(1, PROMPT + GEN);
  let logits = m.forwardCached(Int32Array.from(prompt), 1, PROMPT, cache, { lastOnly: true });
  const times: number[] = [];
  for (let k = 0; k < GEN; k++) {
    const row = logits.data;
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
    times.push(performance.now());
    logits = m.forwardCached(Int32Array.of(best), 1, 1, cache);
  }
  times.push(performance.now());
  return (times[times.length - 1] - times[1]) / (times.length - 2);
}

export async function main(args: string[]): Promise<unknown> {
  const o = parseArgs(args);
  const { backend, coreType } = backendSummary();
  const dir = mkdtempSync(join(tmpdir(), 'lonas-bench-export-'));
  try {
    log('export: building the 135M-shape model and extracting a per-layer sub-network (MLP 100/75/50 %)…');
    const sub = subnetwork();
    const widths = sub.config.layers.map((l) => l.intermediateSize);
    const f32Dir = join(dir, 'f32');
    saveModelDir(f32Dir, sub);
    copyTokenizerFiles(join(ASSETS, 'models', 'stories260K', 'hf-f32'), f32Dir);
    const gguf = join(dir, 'q4_0.gguf');
    const t0 = performance.now();
    const report = exportGguf(f32Dir, gguf, 'q4_0');
    log(
      `  lonas export --type q4_0: ${report.arch}, ${(report.bytes / 1e6).toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const lonasModels = {
      int4_head: loadForInference(writeCompressed(f32Dir, 'int4_head', join(dir, 'int4_head'))),
      int4: loadForInference(writeCompressed(f32Dir, 'int4', join(dir, 'int4'))),
    };
    setThreads(o.threads);
    const llama = await openGguf(gguf, { contextSize: 128, threads: o.threads, kvCache: 'F16' });
    const llamaDecodeMs = async () => {
      const times: number[] = [];
      await llama.greedy(prompt, GEN, () => times.push(performance.now()));
      return (times[times.length - 1] - times[0]) / (times.length - 1);
    };
    const busy = await machineBusy();
    log(
      `export: prompt ${PROMPT}, decode ${GEN}; ${o.rounds} rounds (+1 warm-up), ${o.threads} thread(s); load ${busy.load1}, busy ${busy.busy_pct_before}%`,
    );
    const ms: Record<'llama_cpp_q4_0' | 'lonas_int4_head' | 'lonas_int4', number[]> = {
      llama_cpp_q4_0: [],
      lonas_int4_head: [],
      lonas_int4: [],
    };
    const sides = [
      ['llama_cpp_q4_0', llamaDecodeMs],
      ['lonas_int4_head', async () => lonasDecodeMs(lonasModels.int4_head)],
      ['lonas_int4', async () => lonasDecodeMs(lonasModels.int4)],
    ] as const;
    for (const [, run] of sides) await run(); // warm-up
    for (let r = 0; r < o.rounds; r++) {
      for (const [name, run] of r % 2 ? [...sides].reverse() : sides) ms[name].push(await run());
      log(`  round ${r + 1}/${o.rounds}: ${sides.map(([n]) => `${n} ${ms[n][r].toFixed(2)} ms/tok`).join(', ')}`);
    }
    await llama.dispose();
    const stats = (xs: number[]) => ({
      decode_tok_s: round(1000 / median(xs), 2),
      min_tok_s: round(1000 / Math.max(...xs), 2),
      max_tok_s: round(1000 / Math.min(...xs), 2),
      ms_per_token: round(median(xs), 3),
    });
    const result = {
      bench: 'export',
      model: '135M shape, random weights, per-layer MLP widths',
      widths: [...new Set(widths)],
      layers: widths.length,
      gguf_bytes: report.bytes,
      threads: o.threads,
      rounds: o.rounds,
      prompt: PROMPT,
      decode_tokens: GEN,
      backend,
      openblas_coretype: coreType ?? null,
      load1: busy.load1,
      llama_cpp_q4_0: stats(ms.llama_cpp_q4_0),
      lonas_int4_head: stats(ms.lonas_int4_head),
      lonas_int4: stats(ms.lonas_int4),
      ratio: round(median(ms.llama_cpp_q4_0) / median(ms.lonas_int4_head), 3),
      ratio_f32_head: round(median(ms.llama_cpp_q4_0) / median(ms.lonas_int4), 3),
    };
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
