/**
 * `lonas extract` as a library call: a sub-network of an elastic adapter written as a real, smaller model
 * directory, layer by layer (src/nas/extract-stream.ts), with its provenance and sizes — counted on the way,
 * not by reloading — in lonas_extract.json.
 */
import { resolve } from 'node:path';
import { writeExtractRecord } from '../io/artifacts.ts';
import { TORCH_DTYPES } from '../models/llama/checkpoint.ts';
import type { WeightDType } from '../models/llama/checkpoint.ts';
import { streamExtract } from './extract-stream.ts';
import { describeRequantization, requantizationRecord } from './extract.ts';

export interface SubnetExtractOptions {
  model: string;
  adapter: string;
  subnet: string;
  merge?: boolean;
  out: string;
  /** default: the base's storage dtype */
  dtype?: WeightDType;
  /** a GPTQ base: write its weights in float (`dtype`) instead of on its INT4 grid */
  dequantize?: boolean;
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** Writes the extracted model to `o.out`; returns the report (base, sub-network and extracted sizes). */
export function extractAdapterSubnet(o: SubnetExtractOptions): string {
  for (const [name, dir] of [
    ['--model', o.model],
    ['--adapter', o.adapter],
  ]) {
    if (resolve(o.out) === resolve(dir))
      throw new Error(`--out ${o.out} is the ${name} directory; write the extracted model somewhere else`);
  }
  const r = streamExtract(o.model, o.adapter, o.subnet, o.out, {
    merge: !!o.merge,
    dtype: o.dtype,
    dequantize: o.dequantize,
    finish: (tmp, r) =>
      writeExtractRecord(tmp, {
        format: 1,
        source_model: resolve(o.model),
        adapter: resolve(o.adapter),
        subnet: o.subnet,
        config: r.subnet,
        merged: !r.adapterDir,
        dtype: r.dtype.toLowerCase() as 'f32' | 'bf16' | 'f16',
        dequantized: r.dequantized,
        requantization: r.requantization && requantizationRecord(r.requantization),
        adapter_dir: r.adapterDir ? 'adapter' : null,
        params: { base: r.base.params, extracted: r.extracted.params.total, extracted_adapter: r.extracted.params.adapter },
        macs_1x256: { base: r.base.macs, extracted: r.extracted.macs },
      }),
  });
  const { base, subnetCost: sub, extracted: after } = r;
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`;
  return (
    `base model      ${fmt(base.params)} params, ${fmt(base.macs)} MACs (1×256)\n` +
    `sub-network     ${fmt(sub.params.total)} params (${fmt(sub.params.adapter)} in adapters) at ${o.subnet}\n` +
    `extracted       ${fmt(after.params.total)} params${r.adapterDir ? ` (${fmt(after.params.adapter)} in the adapter)` : ' (merged)'}, ` +
    `${pct(after.params.total, base.params)} of the base; ${fmt(after.macs)} MACs, ${pct(after.macs, base.macs)}; stored as ${r.dtype}\n` +
    `written to      ${resolve(o.out)}${r.adapterDir ? ` (adapter: ${r.adapterDir})` : ''}\n` +
    (r.requantization ? `requantised     ${describeRequantization(r.requantization)}\n` : '') +
    (r.dequantized ? `dequantised     the GPTQ base is written in ${TORCH_DTYPES[r.dtype]}\n` : '')
  );
}
