/**
 * `lonas export --format …`: a model (or an adapter's sub-network, merged on the way) in a format other
 * runtimes load. One branch per format; each format's options are checked in its branch.
 *  - onnx: a folder for ONNX Runtime and transformers.js (src/export/onnx)
 */
import { Command, Option } from 'commander';
import { relative, resolve } from 'node:path';
import { exportOnnx } from '../export/onnx/export.ts';

interface ExportCliOptions {
  format: 'onnx';
  model: string;
  adapter?: string;
  subnet?: string;
  dtype?: string;
  int4?: boolean;
  externalData: 'auto' | 'always' | 'never';
  out: string;
}

function onnx(o: ExportCliOptions): void {
  const dtype = o.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`--dtype ${dtype}: --format onnx stores float weights as f32 or f16`);
  const t0 = performance.now();
  const r = exportOnnx({ model: o.model, adapter: o.adapter, subnet: o.subnet, out: o.out, dtype, int4: !!o.int4, externalData: o.externalData });
  const mb = (r.weightBytes / 2 ** 20).toFixed(1);
  process.stdout.write(
    `exported        ${resolve(r.modelFile)} (${mb} MiB of weights${r.externalData ? ' in external data' : ''}, ${dtype}${o.int4 ? ', GPTQ projections as MatMulNBits' : ''})\n` +
    `files           ${r.files.map((f) => relative(o.out, f)).join(', ')}\n` +
    `in              ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model (or a merged sub-network) for another runtime: onnx (ONNX Runtime, transformers.js)')
    .addOption(new Option('--format <format>', 'output format').choices(['onnx']).makeOptionMandatory())
    .requiredOption('--model <dir>', 'model directory (Hugging Face layout, e.g. written by lonas extract --merge)')
    .option('--adapter <dir>', 'elastic adapter: its sub-network --subnet is merged into the export')
    .option('--subnet <spec>', 'maximal, heuristic, minimal, or a JSON file (with --adapter; default maximal)')
    .option('--dtype <dtype>', 'onnx: storage of float weights, f32 (default) or f16 (computation stays float32)')
    .option('--int4', 'onnx: a 4-bit GPTQ checkpoint\'s projections as com.microsoft MatMulNBits (exact, its own scales and zeros)')
    .addOption(new Option('--external-data <when>', 'onnx: weights in model.onnx_data (auto: past the 2 GB protobuf limit)').choices(['auto', 'always', 'never']).default('auto'))
    .requiredOption('--out <dir>', 'output directory')
    .action((o: ExportCliOptions) => {
      switch (o.format) {
        case 'onnx': return onnx(o);
      }
    });
}
