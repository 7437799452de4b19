/**
 * `lonas bench`: measured prefill and decode latency (min / median over repeats), throughput, parameters and MACs,
 * and the kernels that multiplied by the weights (`weightKernels`: f32 / bf16 / int4 / sparse → number of products).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { loadWithAdapter } from '../nas/load.ts';
import { countMacs, countParams, measureLatency } from '../nas/cost.ts';
import { backendInfo, tallyWeightKernels } from '../kernels/index.ts';
import { benchSpec } from '../options/eval.ts';
import type { BenchOptions } from '../options/eval.ts';
import { commandFrom } from './command.ts';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeBenchRecord } from '../io/artifacts.ts';

export function benchCommand(): Command {
  return commandFrom(benchSpec, (o: BenchOptions) => {
    const { model, config } = loadWithAdapter(o.model, o.adapter, o.subnet);
    if (o.promptLen + o.genLen > model.config.maxPositions) {
      throw new Error(`--prompt-len ${o.promptLen} + --gen-len ${o.genLen} exceed the model's ${model.config.maxPositions} positions`);
    }
    const params = countParams(model);
    const macs = countMacs(model, o.promptLen);
    // the kernels that multiplied by the model's weights during the timed runs (bf16 on a BF16 checkpoint)
    const { result: lat, calls: weightKernels } = tallyWeightKernels(() =>
      measureLatency(model, { promptLen: o.promptLen, genLen: o.genLen, repeats: o.repeats, warmup: o.warmup }),
    );
    const info = backendInfo();
    const out = {
      model: resolve(o.model),
      adapter: o.adapter ? resolve(o.adapter) : null,
      subnet: o.subnet ?? null,
      config: config && Object.keys(config).length ? config : null,
      promptLen: o.promptLen,
      genLen: o.genLen,
      repeats: o.repeats,
      kernels: info.backend,
      threads: info.threads ?? 1,
      weightKernels,
      params,
      macs,
      ...lat,
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
    process.stdout.write(
      `model      ${out.model}${out.adapter ? ` + ${out.adapter}` : ''}${out.subnet ? ` (${out.subnet})` : ''}\n` +
        `kernels    ${out.kernels}, ${out.threads} thread${out.threads === 1 ? '' : 's'}; weight products: ${Object.entries(weightKernels)
          .map(([k, n]) => `${k} ${f(n)}`)
          .join(', ')}\n` +
        `params     ${f(params.total)} (non-zero ${f(params.nonZero)}, adapter ${f(params.adapter)})\n` +
        `MACs       ${f(macs)} for 1×${o.promptLen}\n` +
        `prefill    ${o.promptLen} tokens: min ${lat.prefillMs.min.toFixed(2)} ms, median ${lat.prefillMs.median.toFixed(2)} ms (${lat.prefillTokensPerSecond.toFixed(0)} tokens/s)\n` +
        `decode     ${o.genLen} tokens: min ${lat.decodeMsPerToken.min.toFixed(3)} ms/token, median ${lat.decodeMsPerToken.median.toFixed(3)} ms/token (${lat.decodeTokensPerSecond.toFixed(1)} tokens/s)\n`,
    );
  });
}
