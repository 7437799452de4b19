/**
 * `npm run bench -- subnet` (issue #6): do physically extracted LoNAS sub-networks run as much faster as
 * their MAC count says? On the 135M-shape random Llama (bench/generation.ts) with LoRA r 32 / alpha 64 on
 * all 7 projections (`lonas finetune`'s defaults) and the `lonas` search space (q,k,v rank [32, 28]; MLP
 * width 100/87.5/75/62.5/50 %; gate+up rank [32, 28]), the maximal, heuristic and minimal configurations
 * are extracted merged (src/nas/extract.ts: W' = W[:o', :i'] + s·B A; plain smaller models) and timed
 * in the same run with src/nas/cost.ts's `measureLatency` (what `lonas bench` runs): prefill of a 128-token
 * prompt (last-position logits) and per-token decode of 32 tokens with the KV cache, batch 1. The three
 * models take turns (order alternating between rounds); medians over all samples.
 *
 * `base` is the maximal configuration extracted: the full 135M shape with the (zero-initialised, so
 * value-preserving) adapters merged, i.e. exactly the base model's compute.
 *
 * Ideals (base / sub-network; efficiency = measured speed-up / ideal, goal ≥ 0.9 against the MAC ratio):
 *  - mac_ratio: src/nas/cost.ts `countMacs(model, 128)` as is — linear layers, QKᵀ and PV at full 128×128,
 *    and the LM head for all 128 positions (the search's cost model); `prefill_efficiency_costmodel`;
 *  - mac_ratio_executed: the same count with the LM head for the last position only, which is what the
 *    timed prefill (and generation) computes. The head does not shrink, so counting it 128 times dilutes
 *    the ratio (1.167 instead of 1.219 for the heuristic): `prefill_efficiency` uses this stricter ideal;
 *  - decode_mac_ratio: per-token MACs (linears + LM head + attention over the mean context of the 32
 *    steps) → `decode_efficiency`; param_ratio: parameters = float32 weight bytes streamed per token, the
 *    ideal of a memory-bound step → `decode_efficiency_params`.
 *
 * Options: --rounds N (5) --warmup N (1) --threads N (1; OpenBLAS threads) --prompt-len L (128)
 * --gen-len N (32) --profile (per native-kernel call site time of one prefill and one decode per model).
 * Last stdout line: one JSON object; `ratio` = the heuristic's efficiency, the lower of prefill and decode
 * (measured speed-up / mac_ratio each).
 */
import { setThreads } from '../src/kernels/index.ts';
import { addLora } from '../src/adapters/peft.ts';
import { PROJECTIONS } from '../src/models/llama/model.ts';
import type { LlamaModel } from '../src/models/llama/model.ts';
import { countMacs, countParams, measureLatency } from '../src/nas/cost.ts';
import { PRESETS, resolveSearchSpace } from '../src/nas/search-space.ts';
import { namedSubnet } from '../src/nas/subnet.ts';
import type { NamedSubnet } from '../src/nas/subnet.ts';
import { SuperNet } from '../src/nas/supernet.ts';
import { backendSummary, log, machine, machineBusy, median, round } from './common.ts';
import { SMOL_SHAPE, buildSmolModel } from './generation.ts';
import { installKernelTimers, kernelTimes, resetKernelTimers } from './kernel-timers.ts';

const SEED = 1234;
const LORA = { rank: 32, alpha: 64, dropout: 0 };
const CONFIGS: readonly NamedSubnet[] = ['maximal', 'heuristic', 'minimal'];
const GOAL = 0.9;

interface Options {
  rounds: number;
  warmup: number;
  threads: number;
  promptLen: number;
  genLen: number;
  profile: boolean;
}

function parseArgs(args: string[]): Options {
  const o: Options = { rounds: 5, warmup: 1, threads: 1, promptLen: 128, genLen: 32, profile: false };
  for (let i = 0; i < args.length; i++) {
    const key = args[i],
      value = args[i + 1];
    if (key === '--profile') {
      o.profile = true;
      continue;
    }
    const n = Number(value);
    const min = key === '--warmup' ? 0 : 1;
    if (!Number.isInteger(n) || n < min) throw new Error(`${key} needs an integer ≥ ${min}, got '${value}'`);
    if (key === '--rounds') o.rounds = n;
    else if (key === '--warmup') o.warmup = n;
    else if (key === '--threads') o.threads = n;
    else if (key === '--prompt-len') o.promptLen = n;
    else if (key === '--gen-len') o.genLen = n;
    else throw new Error(`unknown option '${key}' (valid: --rounds N --warmup N --threads N --prompt-len L --gen-len N --profile)`);
    i++;
  }
  return o;
}

/** MACs of the timed prefill: cost.ts's count with the LM head on the last position only. */
function executedPrefillMacs(m: LlamaModel, L: number): number {
  return countMacs(m, L) - (L - 1) * m.config.hiddenSize * m.config.vocabSize;
}

/** Per-token decode MACs at a context of `ctx` keys: cost.ts's 1-token count with attention over ctx keys. */
function decodeMacs(m: LlamaModel, ctx: number): number {
  return countMacs(m, 1) + m.layers.reduce((s, l) => s + 2 * (ctx - 1) * l.proj.q_proj.outFeatures, 0);
}

/** The three extracted models of the LoRA super-network, with their cost figures. */
function extractAll(o: Options) {
  const model = buildSmolModel(SEED, o.promptLen + o.genLen);
  const targets = [...PROJECTIONS];
  addLora(model, { ...LORA, targets }, SEED + 2);
  const supernet = new SuperNet(model, resolveSearchSpace(PRESETS.lonas, model.config, LORA.rank, targets));
  const out = {} as Record<NamedSubnet, { model: LlamaModel; config: Record<string, number>; sizes: string }>;
  for (const name of CONFIGS) {
    const config = namedSubnet(supernet.space, name);
    const extracted = supernet.extract(config);
    const widths = [...new Set(extracted.config.layers.map((l) => l.intermediateSize))];
    out[name] = { model: extracted, config, sizes: `MLP width ${widths.join('/')}` };
    log(
      `  ${name}: ${out[name].sizes}, ranks ${[
        ...new Set(
          Object.entries(config)
            .filter(([k]) => k.includes('rank'))
            .map(([, v]) => v),
        ),
      ].join('/')} (merged)`,
    );
  }
  return out;
}

export async function main(args: string[]): Promise<unknown> {
  const o = parseArgs(args);
  if (o.profile) installKernelTimers();
  const { backend, coreType } = backendSummary();
  log(
    `subnet: building the 135M-shape super-network (LoRA r ${LORA.rank} on all projections, lonas space) and extracting ${CONFIGS.join(', ')}…`,
  );
  const models = extractAll(o);
  setThreads(o.threads);
  const loadBefore = await machineBusy();
  log(
    `subnet: prefill ${o.promptLen} tokens, decode ${o.genLen}; ${o.rounds} rounds (+${o.warmup} warm-up), ${o.threads} thread(s); ` +
      `load ${loadBefore.load1}, busy ${loadBefore.busy_pct_before}%`,
  );
  const prefill = { maximal: [], heuristic: [], minimal: [] } as Record<NamedSubnet, number[]>;
  const decode = { maximal: [], heuristic: [], minimal: [] } as Record<NamedSubnet, number[]>;
  const lat = (m: LlamaModel) => measureLatency(m, { promptLen: o.promptLen, genLen: o.genLen, repeats: 1, warmup: 0 });
  for (const name of CONFIGS) for (let w = 0; w < o.warmup; w++) lat(models[name].model);
  for (let r = 0; r < o.rounds; r++) {
    for (const name of r % 2 === 0 ? CONFIGS : [...CONFIGS].reverse()) {
      const l = lat(models[name].model);
      prefill[name].push(l.prefillMs.median);
      decode[name].push(l.decodeMsPerToken.median);
    }
    log(
      `  round ${r + 1}/${o.rounds}: ` +
        CONFIGS.map((n) => `${n} prefill ${median(prefill[n]).toFixed(1)} ms, decode ${median(decode[n]).toFixed(2)} ms/tok`).join('; '),
    );
  }

  const base = models.maximal.model;
  const ctx = o.promptLen + (o.genLen + 1) / 2; // mean keys seen by the decode steps
  const cost = (m: LlamaModel) => ({
    params: countParams(m).total,
    macs: countMacs(m, o.promptLen),
    macs_executed: executedPrefillMacs(m, o.promptLen),
    decode_macs: decodeMacs(m, ctx),
  });
  const baseCost = cost(base);
  const figures: Record<string, unknown> = {};
  for (const name of CONFIGS) {
    const c = cost(models[name].model);
    const prefillSpeedup = median(prefill.maximal) / median(prefill[name]);
    const decodeSpeedup = median(decode.maximal) / median(decode[name]);
    const macRatio = baseCost.macs / c.macs,
      macExec = baseCost.macs_executed / c.macs_executed;
    const decMac = baseCost.decode_macs / c.decode_macs,
      paramRatio = baseCost.params / c.params;
    figures[name === 'maximal' ? 'base' : name] = {
      config: name,
      sizes: models[name].sizes,
      params: c.params,
      macs: c.macs,
      prefill_ms: round(median(prefill[name]), 2),
      prefill_min_ms: round(Math.min(...prefill[name]), 2),
      decode_ms_per_token: round(median(decode[name]), 3),
      decode_min_ms_per_token: round(Math.min(...decode[name]), 3),
      mac_ratio: round(macRatio),
      mac_ratio_executed: round(macExec),
      decode_mac_ratio: round(decMac),
      param_ratio: round(paramRatio),
      prefill_speedup: round(prefillSpeedup),
      decode_speedup: round(decodeSpeedup),
      prefill_efficiency: round(prefillSpeedup / macExec),
      prefill_efficiency_costmodel: round(prefillSpeedup / macRatio),
      decode_efficiency: round(decodeSpeedup / decMac),
      decode_efficiency_params: round(decodeSpeedup / paramRatio),
    };
  }
  if (o.profile) figures.profile = profile(models, o);
  const h = figures.heuristic as { prefill_efficiency: number; decode_efficiency: number };
  const m = figures.minimal as { prefill_efficiency: number; decode_efficiency: number };
  const ratio = Math.min(h.prefill_efficiency, h.decode_efficiency);
  return {
    bench: 'subnet',
    shape: SMOL_SHAPE,
    lora: { ...LORA, targets: 'all 7 projections' },
    space: 'lonas',
    prompt_tokens: o.promptLen,
    gen_tokens: o.genLen,
    threads: o.threads,
    samples: o.rounds,
    ...figures,
    ratio: round(ratio),
    ratio_meaning:
      'heuristic sub-network: measured speed-up / MAC-ratio ideal (prefill: mac_ratio_executed; decode: decode_mac_ratio), the lower of prefill and decode; goal ≥ 0.9',
    goal_met: { heuristic: ratio >= GOAL, minimal: Math.min(m.prefill_efficiency, m.decode_efficiency) >= GOAL },
    backend,
    coreType,
    machine: { ...loadBefore, load1_after: machine().load1 },
  };
}

/** Native time per call site of one prefill and one decode of each model (kernel timers). */
function profile(models: Record<NamedSubnet, { model: LlamaModel }>, o: Options) {
  const out: Record<string, unknown> = {};
  for (const name of CONFIGS) {
    resetKernelTimers();
    const l = measureLatency(models[name].model, { promptLen: o.promptLen, genLen: o.genLen, repeats: 1, warmup: 0 });
    const all = kernelTimes(1);
    out[name] = {
      prefill_plus_decode_ms: round(l.prefillMs.median + o.genLen * l.decodeMsPerToken.median, 1),
      native_ms: round(
        all.reduce((a, k) => a + k.ms, 0),
        1,
      ),
      kernels: all.slice(0, 14),
    };
  }
  return out;
}
