/**
 * `lonas extract` as a library call: a sub-network of an elastic adapter written as a real, smaller model
 * directory (src/nas/extract.ts), reloaded to prove it loads and to count what was written, with its
 * provenance and sizes in lonas_extract.json.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadLlama } from '../models/llama/checkpoint.ts';
import { loadAdapter } from '../adapters/peft.ts';
import { writeExtractRecord } from '../io/artifacts.ts';
import { loadWithAdapter } from './load.ts';
import { describeRequantization, extractToDir, requantizationRecord } from './extract.ts';
import { countMacs, countParams } from './cost.ts';

export interface SubnetExtractOptions {
  model: string;
  adapter: string;
  subnet: string;
  merge?: boolean;
  out: string;
  dtype: 'f32' | 'bf16';
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
  const { supernet } = loadWithAdapter(o.model, o.adapter, o.subnet);
  const { model, config } = supernet!;
  const before = supernet!.baseCost(256);
  const sub = supernet!.cost(config, { merged: false, seqLen: 256 });
  const hfConfig = JSON.parse(readFileSync(join(o.model, 'config.json'), 'utf8')) as Record<string, unknown>;
  const { adapterDir, requantization } = extractToDir(model, o.out, {
    merge: !!o.merge,
    sourceDir: o.model,
    hfConfig,
    dtype: o.dtype === 'bf16' ? 'BF16' : 'F32',
    dequantize: o.dequantize,
  });
  const small = loadLlama(o.out); // proves the result loads, and counts what was written
  if (adapterDir) loadAdapter(small, adapterDir);
  const after = { params: countParams(small), macs: countMacs(small, 256) };
  writeExtractRecord(o.out, {
    format: 1,
    source_model: resolve(o.model),
    adapter: resolve(o.adapter),
    subnet: o.subnet,
    config,
    merged: !adapterDir,
    dtype: o.dtype,
    dequantized: !!o.dequantize && !!hfConfig.quantization_config,
    requantization: requantization && requantizationRecord(requantization),
    adapter_dir: adapterDir ? 'adapter' : null,
    params: { base: before.params.total, extracted: after.params.total, extracted_adapter: after.params.adapter },
    macs_1x256: { base: before.macs, extracted: after.macs },
  });
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`;
  return (
    `base model      ${fmt(before.params.total)} params, ${fmt(before.macs)} MACs (1×256)\n` +
    `sub-network     ${fmt(sub.params.total)} params (${fmt(sub.params.adapter)} in adapters) at ${o.subnet}\n` +
    `extracted       ${fmt(after.params.total)} params${adapterDir ? ` (${fmt(after.params.adapter)} in the adapter)` : ' (merged)'}, ` +
    `${pct(after.params.total, before.params.total)} of the base; ${fmt(after.macs)} MACs, ${pct(after.macs, before.macs)}\n` +
    `written to      ${resolve(o.out)}${adapterDir ? ` (adapter: ${resolve(adapterDir)})` : ''}\n` +
    (requantization ? `requantised     ${describeRequantization(requantization)}\n` : '') +
    (o.dequantize && hfConfig.quantization_config
      ? `dequantised     the GPTQ base is written in ${o.dtype === 'bf16' ? 'bfloat16' : 'float32'}\n`
      : '')
  );
}
