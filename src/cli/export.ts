/**
 * `lonas export --format gguf|onnx`: a model (optionally an adapter + sub-network, merged on the way) as a
 * file or folder another runtime loads. One branch per format; each checks that only its own flags are given.
 *  - gguf: one file for llama.cpp / ollama / LM Studio / node-llama-cpp (src/export/gguf)
 *  - onnx: a folder for ONNX Runtime and transformers.js (src/export/onnx)
 */
import type { Command } from 'commander';
import { relative, resolve } from 'node:path';
import { exportGguf } from '../export/gguf/convert.ts';
import type { GgufExportReport } from '../export/gguf/convert.ts';
import { withMergedSubnet } from '../export/merged-subnet.ts';
import { exportOnnx } from '../export/onnx/export.ts';
import { exportSpec } from '../options/export.ts';
import type { ExportOptions } from '../options/export.ts';
import { commandFrom } from './command.ts';
import { describeRequantization } from '../nas/extract.ts';
import type { Requantization } from '../nas/extract.ts';

function printGgufReport(r: GgufExportReport, out: string): void {
  const quantized = r.notes.filter((n) => n.note.startsWith('quantized'));
  const other = r.notes.filter((n) => !n.note.startsWith('quantized'));
  const worst = quantized.reduce((m, n) => Math.max(m, n.maxError ?? 0), 0);
  process.stdout.write(
    `architecture    ${r.arch}${r.perLayer ? ' (per-layer MLP widths / head counts)' : ''}\n` +
      `tensors         ${r.tensors}, ${(r.bytes / 2 ** 20).toFixed(2)} MiB\n` +
      (quantized.length ? `quantized       ${quantized.length} tensors, max |error| ${worst.toExponential(2)}\n` : '') +
      other.map((n) => `note            ${n.tensor} (${n.type}): ${n.note}\n`).join('') +
      `written to      ${resolve(out)}\n`,
  );
}

/** An adapter merged onto a GPTQ base is requantised onto its grid: what that cost. */
function printRequantization(r: Requantization | null): void {
  if (r)
    process.stdout.write(
      `merged          ${describeRequantization(r, 'for the float merge, export what `lonas merge --dequantize` writes')}\n`,
    );
}

function gguf(o: ExportOptions): void {
  if (o.dtype || o.int4 || o.externalData !== 'auto')
    throw new Error(
      '--dtype, --int4 and --external-data are --format onnx options; for gguf, --type chooses the storage (GPTQ projections become q4_1 by themselves)',
    );
  const run = (dir: string, requantization: Requantization | null = null) => {
    printRequantization(requantization);
    printGgufReport(exportGguf(dir, o.out, o.type ?? 'f32'), o.out);
  };
  if (o.adapter) withMergedSubnet(o.model, o.adapter, o.subnet, run);
  else run(o.model);
}

function onnx(o: ExportOptions): void {
  if (o.type)
    throw new Error(
      '--type is a --format gguf option; for onnx, --dtype f32|f16 chooses the float storage and --int4 keeps GPTQ projections 4-bit',
    );
  const dtype = o.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`--dtype ${dtype}: --format onnx stores float weights as f32 or f16`);
  const t0 = performance.now();
  const r = exportOnnx({
    model: o.model,
    adapter: o.adapter,
    subnet: o.subnet,
    out: o.out,
    dtype,
    int4: o.int4,
    externalData: o.externalData,
  });
  printRequantization(r.requantization ?? null);
  const mb = (r.weightBytes / 2 ** 20).toFixed(1);
  process.stdout.write(
    `exported        ${resolve(r.modelFile)} (${mb} MiB of weights${r.externalData ? ' in external data' : ''}, ${dtype}${o.int4 ? ', GPTQ projections as MatMulNBits' : ''})\n` +
      `files           ${r.files.map((f) => relative(o.out, f)).join(', ')}\n` +
      `in              ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}

export function exportCommand(): Command {
  return commandFrom(exportSpec, (o: ExportOptions) => {
    if (o.subnet && !o.adapter) throw new Error('--subnet needs --adapter (a sub-network is a configuration of an elastic adapter)');
    switch (o.format) {
      case 'gguf':
        return gguf(o);
      case 'onnx':
        return onnx(o);
    }
  });
}
