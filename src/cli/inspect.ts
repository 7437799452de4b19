/** `lonas inspect`: what a model directory holds — per-layer sizes, sparsity, storage dtype, parameter counts. */
import type { Command } from 'commander';
import { loadModelDir } from '../models/llama/checkpoint.ts';
import { readCompression } from '../io/artifacts.ts';
import { inspectSpec } from '../options/tools.ts';
import type { InspectOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';

export function inspectCommand(): Command {
  return commandFrom(inspectSpec, (o: InspectOptions) => {
    const loaded = loadModelDir(o.model);
    const c = loaded.config;
    const rows: { layer: string; params: number; nonZero: number; sparsity: number; intermediate: number | null; heads: string | null }[] =
      [];
    let total = 0,
      nonZero = 0;
    const compression = readCompression(o.model);
    const kept = compression?.method === 'gptq' ? compression.kept_zeros : {};
    // a GPTQ weight's zeros are sparsity only as far as they were kept from its source (lonas_compression.json
    // kept_zeros); other codes at the zero point dequantise to 0 by rounding and are not counted
    const count = (names: string[]) => {
      let n = 0,
        nz = 0;
      for (const name of names) {
        const t = loaded.weights.get(name);
        if (!t) continue;
        n += t.size;
        const module = name.replace(/\.weight$/, '');
        if (loaded.quantized.has(module)) nz += t.size - (kept[module] ?? 0);
        else for (const v of t.data) if (v !== 0) nz++;
      }
      return { n, nz };
    };
    const layerNames = (i: number) => [...loaded.weights.keys()].filter((k) => k.startsWith(`model.layers.${i}.`));
    c.layers.forEach((l, i) => {
      const { n, nz } = count(layerNames(i));
      rows.push({
        layer: String(i),
        params: n,
        nonZero: nz,
        sparsity: 1 - nz / n,
        intermediate: l.intermediateSize,
        heads: `${l.numHeads}/${l.numKvHeads}`,
      });
      total += n;
      nonZero += nz;
    });
    const other = count([...loaded.weights.keys()].filter((k) => !k.startsWith('model.layers.')));
    total += other.n;
    nonZero += other.nz;
    const headQw = loaded.quantized.get('lm_head');
    const lmHead = headQw
      ? { format: `INT${headQw.bits}`, bits: headQw.bits, groupSize: headQw.groupSize, tied: false }
      : { format: loaded.dtype, bits: null, groupSize: null, tied: c.tieWordEmbeddings };
    const projections = c.quantization ? `INT${c.quantization.bits}` : loaded.dtype;
    const summary = {
      model: o.model,
      dtype: loaded.dtype,
      projections,
      layers: c.layers.length,
      hidden: c.hiddenSize,
      vocab: c.vocabSize,
      params: total,
      nonZero,
      sparsity: 1 - nonZero / total,
      compression: compression && {
        method: compression.method,
        sparsity: compression.method === 'gptq' ? null : compression.sparsity,
        nm: compression.method === 'gptq' ? null : compression.nm,
        bits: compression.method === 'gptq' ? compression.bits : null,
      },
      quantization: c.quantization ?? null,
      quantizedProjections: loaded.quantized.size - (headQw ? 1 : 0),
      lmHead,
      perLayer: rows,
    };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return;
    }
    const out = [
      `${o.model}: ${c.layers.length} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}, stored as ${loaded.dtype}${c.quantization ? `, projections ${projections} (GPTQ)` : ''}`,
      `parameters ${total.toLocaleString('en-US')} (non-zero ${nonZero.toLocaleString('en-US')}, ${(100 * (1 - nonZero / total)).toFixed(2)}% zero)`,
      ...(compression
        ? [
            `compressed with ${compression.method}${compression.method === 'gptq' ? ` ${compression.bits}-bit, group ${compression.group_size}${compression.lm_head ? ', LM head included' : ''}` : compression.nm ? ` ${compression.nm}` : ` at ${compression.sparsity}`}`,
          ]
        : []),
      ...(c.quantization
        ? [
            `GPTQ ${c.quantization.bits}-bit projections (group ${c.quantization.groupSize}${c.quantization.descAct ? ', act-order' : ''}, ${c.quantization.format}): ${summary.quantizedProjections} quantised`,
          ]
        : []),
      headQw
        ? `LM head: ${lmHead.format} (GPTQ ${headQw.bits}-bit, group ${headQw.groupSize}), not tied to the embedding`
        : `LM head: ${loaded.dtype}${c.tieWordEmbeddings ? ', tied to the embedding' : ''}, not quantised`,
      'layer  params       non-zero     sparsity  mlp width  heads (q/kv)',
      ...rows.map(
        (r) =>
          `${r.layer.padEnd(6)} ${String(r.params).padEnd(12)} ${String(r.nonZero).padEnd(12)} ${(100 * r.sparsity).toFixed(2).padStart(6)}%   ${String(r.intermediate).padEnd(10)} ${r.heads}`,
      ),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  });
}
