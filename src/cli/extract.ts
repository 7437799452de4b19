/**
 * `lonas extract`: turn a sub-network of an elastic adapter into a real, smaller model directory (spec.md §5).
 * Merged: one plain model (W' = W + s·BA on the active slices). Unmerged: the sliced base model plus a sliced
 * PEFT adapter in <out>/adapter. Tokenizer files are copied; lonas_extract.json records the provenance.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadWithAdapter } from '../nas/load.ts';
import { extractToDir } from '../nas/extract.ts';
import { applySubnet } from '../nas/subnet.ts';
import { countMacs, countParams } from '../nas/cost.ts';
import type { ParamCount } from '../nas/cost.ts';
import { loadLlama } from '../models/llama/checkpoint.ts';
import { loadAdapter, loraModules } from '../adapters/peft.ts';
import { writeExtractRecord } from '../io/artifacts.ts';
import type { LlamaModel } from '../models/llama/model.ts';
import { PROJECTIONS } from '../models/llama/model.ts';
import { Linear } from '../nn/modules.ts';
import { LoraLinear } from '../adapters/lora.ts';
import { extractSpec } from '../options/search.ts';
import type { ExtractOptions } from '../options/search.ts';
import { commandFrom } from './command.ts';

type ExtractCliOptions = ExtractOptions;

/** Parameters and MACs of the base model alone: every projection at full size, adapters switched off. */
function baseCost(model: LlamaModel): { params: ParamCount; macs: number } {
  const ranks = loraModules(model).map((l) => l.activeRank);
  for (const layer of model.layers) for (const p of PROJECTIONS) {
    const m = layer.proj[p];
    if (m instanceof Linear) [m.activeOut, m.activeIn] = m.weight.shape;
    else if (m instanceof LoraLinear) { m.resetActive(); m.activeRank = 0; }
  }
  const out = { params: countParams(model), macs: countMacs(model) };
  loraModules(model).forEach((l, k) => (l.activeRank = ranks[k]));
  return out;
}

const fmt = (n: number) => n.toLocaleString('en-US');

export function extractCommand(): Command {
  return commandFrom(extractSpec, (o: ExtractCliOptions) => {
    for (const [name, dir] of [['--model', o.model], ['--adapter', o.adapter]]) {
      if (resolve(o.out) === resolve(dir)) throw new Error(`--out ${o.out} is the ${name} directory; write the extracted model somewhere else`);
    }
    const { model, space, config } = loadWithAdapter(o.model, o.adapter, o.subnet);
    const before = baseCost(model);
    applySubnet(model, space!, config!);
    const sub = { params: countParams(model), macs: countMacs(model) };
    const hfConfig = JSON.parse(readFileSync(join(o.model, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { adapterDir } = extractToDir(model, o.out, { merge: !!o.merge, sourceDir: o.model, hfConfig, dtype: o.dtype === 'bf16' ? 'BF16' : 'F32' });
    const small = loadLlama(o.out); // proves the result loads, and counts what was written
    if (adapterDir) loadAdapter(small, adapterDir);
    const after = { params: countParams(small), macs: countMacs(small) };
    writeExtractRecord(o.out, {
      format: 1, source_model: resolve(o.model), adapter: resolve(o.adapter), subnet: o.subnet, config,
      merged: !adapterDir, dtype: o.dtype, adapter_dir: adapterDir ? 'adapter' : null,
      params: { base: before.params.total, extracted: after.params.total, extracted_adapter: after.params.adapter },
      macs_1x256: { base: before.macs, extracted: after.macs },
    });
    const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`;
    process.stdout.write(
      `base model      ${fmt(before.params.total)} params, ${fmt(before.macs)} MACs (1×256)\n` +
      `sub-network     ${fmt(sub.params.total)} params (${fmt(sub.params.adapter)} in adapters) at ${o.subnet}\n` +
      `extracted       ${fmt(after.params.total)} params${adapterDir ? ` (${fmt(after.params.adapter)} in the adapter)` : ' (merged)'}, ` +
      `${pct(after.params.total, before.params.total)} of the base; ${fmt(after.macs)} MACs, ${pct(after.macs, before.macs)}\n` +
      `written to      ${resolve(o.out)}${adapterDir ? ` (adapter: ${resolve(adapterDir)})` : ''}\n`);
  });
}
