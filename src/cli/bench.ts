/**
 * `lonas bench`: measured prefill and decode latency (median and min–max over repeats), throughput, parameters
 * and MACs — of the model as loaded, or merged in memory (--merged) — and, with --ref-model, the speed-up over a
 * reference timed interleaved with it (A B A B …) in the same process; `weightKernels`: the kernels that multiplied by
 * the weights during the timed runs (f32 / bf16 / int4 / sparse → number of products).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { loadWithAdapter, useSparseKernels } from '../nas/load.ts';
import type { LoadedSubnet } from '../nas/load.ts';
import { OVERHEAD_DOMINATES, copyBytesPerMs, countCost, measureLatencies, overheadShare, speedupOf } from '../nas/cost.ts';
import type { Spread } from '../nas/cost.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { backendInfo, tallyWeightKernels } from '../kernels/index.ts';
import { benchSpec } from '../options/eval.ts';
import type { BenchOptions } from '../options/eval.ts';
import { commandFrom } from './command.ts';
import { setGemmCompute } from '../kernels/compute-mode.ts';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeBenchRecord } from '../io/artifacts.ts';
import { speedupText } from '../report/format.ts';

/** The model to count and time: as loaded, or with its adapter merged in memory at the active configuration. */
function shipped(l: LoadedSubnet, merged: boolean): LlamaModel {
  if (!merged || !l.supernet) return l.model;
  const m = l.supernet.extract(l.supernet.config);
  useSparseKernels(m);
  return m;
}

export function benchCommand(): Command {
  return commandFrom(benchSpec, (o: BenchOptions) => {
    if (!o.refModel && (o.refAdapter || o.refSubnet)) throw new Error('--ref-adapter and --ref-subnet need --ref-model');
    const computeNote = setGemmCompute(o.compute);
    if (computeNote) process.stderr.write(`${computeNote}\n`);
    const loaded = loadWithAdapter(o.model, o.adapter, o.subnet);
    const model = shipped(loaded, o.merged);
    const ref = o.refModel ? shipped(loadWithAdapter(o.refModel, o.refAdapter, o.refSubnet), o.merged) : null;
    for (const m of ref ? [model, ref] : [model])
      if (o.promptLen + o.genLen > m.config.maxPositions)
        throw new Error(`--prompt-len ${o.promptLen} + --gen-len ${o.genLen} exceed the model's ${m.config.maxPositions} positions`);
    const { params, macs } = countCost(model, { merged: o.merged, seqLen: o.promptLen });
    // the model directory alone (full size, no adapter): the reference of parameter and MAC reductions
    const base = loaded.supernet ? loaded.supernet.baseCost(o.promptLen) : countCost(loaded.model, { merged: false, seqLen: o.promptLen });
    const timing = { promptLen: o.promptLen, genLen: o.genLen, repeats: o.repeats, warmup: o.warmup };
    // the kernels that multiplied by the weights during the timed runs (bf16 on a BF16 checkpoint), of both models when interleaved
    const {
      result: [lat, refLat],
      calls: weightKernels,
    } = tallyWeightKernels(() => measureLatencies(ref ? [model, ref] : [model], timing));
    const bytesPerMs = copyBytesPerMs();
    const overhead = overheadShare(lat.decodeMsPerToken.median, params.total, bytesPerMs);
    const info = backendInfo();
    const reference = o.refModel
      ? { model: resolve(o.refModel), adapter: o.refAdapter ? resolve(o.refAdapter) : null, subnet: o.refSubnet ?? null }
      : null;
    const out = {
      model: resolve(o.model),
      adapter: o.adapter ? resolve(o.adapter) : null,
      subnet: o.subnet ?? null,
      config: loaded.config && Object.keys(loaded.config).length ? loaded.config : null,
      merged: o.merged,
      promptLen: o.promptLen,
      genLen: o.genLen,
      repeats: o.repeats,
      kernels: info.backend,
      threads: info.threads ?? 1,
      weightKernels,
      params,
      macs,
      base: { params: base.params, macs: base.macs },
      ...lat,
      copyBytesPerMs: bytesPerMs,
      overheadShare: overhead,
      ...(reference && refLat ? { reference: { ...reference, ...refLat }, speedup: speedupOf(refLat, lat) } : {}),
    };
    if (o.out) {
      mkdirSync(dirname(o.out), { recursive: true });
      writeBenchRecord(o.out, out);
    }
    if (o.json) {
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return;
    }
    const f = (n: number) => n.toLocaleString('en-US');
    const t = (s: Spread, d: number) => `median ${s.median.toFixed(d)}, min–max ${s.min.toFixed(d)}–${s.max.toFixed(d)}`;
    const speed = out.speedup
      ? `speed-up   against ${reference!.model}${reference!.adapter ? ` + ${reference!.adapter}` : ''}, ${o.repeats} interleaved runs: ` +
        `prefill ${speedupText(out.speedup.prefill)}, decode ${speedupText(out.speedup.decode)}\n`
      : '';
    const note =
      overhead > OVERHEAD_DOMINATES
        ? `note       ${Math.round(100 * overhead)}% of a decode step is not explained by reading the weights: per-call overhead dominates, times do not follow the parameters or MACs\n`
        : '';
    process.stdout.write(
      `model      ${out.model}${out.adapter ? ` + ${out.adapter}` : ''}${out.subnet ? ` (${out.subnet})` : ''}${o.merged ? ', merged' : ''}\n` +
        `kernels    ${out.kernels}, ${out.threads} thread${out.threads === 1 ? '' : 's'}; weight products: ${Object.entries(weightKernels)
          .map(([k, n]) => `${k} ${f(n)}`)
          .join(', ')}\n` +
        `params     ${f(params.total)} (non-zero ${f(params.nonZero)}, adapter ${f(params.adapter)})\n` +
        `MACs       ${f(macs)} for 1×${o.promptLen}\n` +
        `prefill    ${o.promptLen} tokens: ${t(lat.prefillMs, 2)} ms (${lat.prefillTokensPerSecond.toFixed(0)} tokens/s)\n` +
        `decode     ${o.genLen} tokens: ${t(lat.decodeMsPerToken, 3)} ms/token (${lat.decodeTokensPerSecond.toFixed(1)} tokens/s)\n` +
        speed +
        note,
    );
  });
}
