/**
 * `lonas inspect`: what a model directory holds — per-layer sizes, storage dtype, parameter counts, GPTQ
 * projections — from config.json and the safetensors headers alone, so it takes no memory and no time on a
 * 7B model. Sparsity needs the weights themselves: `--sparsity` reads them one tensor at a time. A GPTQ
 * weight's zeros are sparsity only as far as they were kept from its source (lonas_compression.json
 * kept_zeros), which needs no reading; other codes at the zero point dequantise to 0 by rounding and are not counted.
 */
import type { Command } from 'commander';
import { openModelWeights } from '../models/llama/checkpoint.ts';
import type { ModelWeights } from '../models/llama/checkpoint.ts';
import { llamaWeightTable } from '../models/llama/weights.ts';
import type { LlamaTensor } from '../models/llama/weights.ts';
import { packedWords } from '../io/gptq-format.ts';
import { readCompression } from '../io/artifacts.ts';
import { inspectSpec } from '../options/tools.ts';
import type { InspectOptions } from '../options/tools.ts';
import { commandFrom } from './command.ts';

interface LayerRow {
  layer: string;
  params: number;
  /** null without --sparsity (unless every weight of the row is GPTQ with recorded kept zeros) */
  nonZero: number | null;
  sparsity: number | null;
  intermediate: number;
  heads: string;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** The elements and non-zeros of table rows: sizes from the headers (checked against config.json), non-zeros when known. */
function counter(w: ModelWeights, dir: string, sparsity: boolean, kept: Record<string, number>) {
  const q = w.config.quantization;
  return (rows: LlamaTensor[]): { n: number; nz: number | null } => {
    let n = 0,
      nz: number | null = 0;
    for (const t of rows) {
      const size = t.shape.reduce((a, b) => a * b, 1);
      const module = t.name.replace(/\.weight$/, '');
      if (q && w.gptq(t)) {
        const e = w.entry(`${module}.qweight`)!;
        const want = [packedWords(t.shape[1], q.bits), t.shape[0]];
        if (!sameShape(e.shape, want))
          throw new Error(`${dir}: '${module}.qweight' has shape [${e.shape.join(', ')}], config.json's sizes need [${want.join(', ')}]`);
        n += size;
        if (nz !== null) nz += size - (kept[module] ?? 0);
        continue;
      }
      const e = w.entry(t.name);
      if (!e) throw new Error(`${dir}: the weights have no tensor '${t.name}' (the weights do not match config.json)`);
      if (!sameShape(e.shape, t.shape))
        throw new Error(`${dir}: '${t.name}' has shape [${e.shape.join(', ')}], config.json's sizes need [${t.shape.join(', ')}]`);
      n += size;
      if (!sparsity) nz = null;
      else if (nz !== null) for (const v of w.read(t.name).data) if (v !== 0) nz++; // one tensor in memory at a time
    }
    return { n, nz };
  };
}

/** The inspect report of a model directory (what --json prints). */
export function inspectModel(o: InspectOptions) {
  const w = openModelWeights(o.model);
  try {
    const c = w.config,
      table = llamaWeightTable(c);
    const compression = readCompression(o.model);
    const count = counter(w, o.model, o.sparsity, compression?.method === 'gptq' ? compression.kept_zeros : {});
    let total = 0,
      nonZero: number | null = 0;
    const add = (r: { n: number; nz: number | null }) => {
      total += r.n;
      nonZero = nonZero === null || r.nz === null ? null : nonZero + r.nz;
      return r;
    };
    const perLayer: LayerRow[] = table.layers.map((l, i) => {
      const { n, nz } = add(
        count([l.inputNorm, l.postAttentionNorm, ...Object.values(l.proj).flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight]))]),
      );
      const s = c.layers[i];
      return {
        layer: String(i),
        params: n,
        nonZero: nz,
        sparsity: nz === null ? null : 1 - nz / n,
        intermediate: s.intermediateSize,
        heads: `${s.numHeads}/${s.numKvHeads}`,
      };
    });
    add(count([table.embed, table.norm, ...(table.lmHead ? [table.lmHead] : [])]));
    const headGptq = table.lmHead !== null && w.gptq(table.lmHead);
    const q = c.quantization;
    const lmHead =
      headGptq && q
        ? { format: `INT${q.bits}`, bits: q.bits, groupSize: q.groupSize > 0 ? q.groupSize : c.hiddenSize, tied: false }
        : { format: w.dtype, bits: null, groupSize: null, tied: c.tieWordEmbeddings };
    const quantizedProjections = table.layers.reduce((k, l) => k + Object.values(l.proj).filter((p) => w.gptq(p.weight)).length, 0);
    const nz = nonZero as number | null;
    return {
      model: o.model,
      dtype: w.dtype,
      projections: q ? `INT${q.bits}` : w.dtype,
      layers: c.layers.length,
      hidden: c.hiddenSize,
      vocab: c.vocabSize,
      params: total,
      nonZero: nz,
      sparsity: nz === null ? null : 1 - nz / total,
      compression: compression && {
        method: compression.method,
        sparsity: compression.method === 'gptq' ? null : compression.sparsity,
        nm: compression.method === 'gptq' ? null : compression.nm,
        bits: compression.method === 'gptq' ? compression.bits : null,
      },
      quantization: q ?? null,
      quantizedProjections,
      lmHead,
      perLayer,
    };
  } finally {
    w.close();
  }
}

const pct = (x: number | null) => (x === null ? '     -' : `${(100 * x).toFixed(2).padStart(6)}%`);

export function inspectCommand(): Command {
  return commandFrom(inspectSpec, (o: InspectOptions) => {
    const s = inspectModel(o);
    if (o.json) {
      process.stdout.write(`${JSON.stringify(s)}\n`);
      return;
    }
    const { quantization: q, lmHead } = s;
    const record = readCompression(o.model);
    const fmt = (n: number) => n.toLocaleString('en-US');
    const out = [
      `${s.model}: ${s.layers} layers, hidden ${s.hidden}, vocab ${s.vocab}, stored as ${s.dtype}${q ? `, projections ${s.projections} (GPTQ)` : ''}`,
      `parameters ${fmt(s.params)} ` +
        (s.nonZero === null
          ? '(sparsity not counted: pass --sparsity to read the weights)'
          : `(non-zero ${fmt(s.nonZero)}, ${(100 * (1 - s.nonZero / s.params)).toFixed(2)}% zero)`),
      ...(record
        ? [
            `compressed with ${record.method}${record.method === 'gptq' ? ` ${record.bits}-bit, group ${record.group_size}${record.lm_head ? ', LM head included' : ''}` : record.nm ? ` ${record.nm}` : ` at ${record.sparsity}`}`,
          ]
        : []),
      ...(q
        ? [
            `GPTQ ${q.bits}-bit projections (group ${q.groupSize}${q.descAct ? ', act-order' : ''}, ${q.format}): ${s.quantizedProjections} quantised`,
          ]
        : []),
      lmHead.bits !== null
        ? `LM head: ${lmHead.format} (GPTQ ${lmHead.bits}-bit, group ${lmHead.groupSize}), not tied to the embedding`
        : `LM head: ${s.dtype}${lmHead.tied ? ', tied to the embedding' : ''}, not quantised`,
      'layer  params       non-zero     sparsity  mlp width  heads (q/kv)',
      ...s.perLayer.map(
        (r) =>
          `${r.layer.padEnd(6)} ${String(r.params).padEnd(12)} ${String(r.nonZero ?? '-').padEnd(12)} ${pct(r.sparsity)}   ${String(r.intermediate).padEnd(10)} ${r.heads}`,
      ),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  });
}
