/**
 * `lonas export`: a model (optionally an adapter + sub-network, merged on the way) as a file another
 * runtime loads. `--format gguf` writes GGUF for llama.cpp / ollama / LM Studio / node-llama-cpp.
 */
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { exportGguf, GGUF_TYPES } from '../export/gguf/convert.ts';
import type { GgufExportReport, GgufOutType } from '../export/gguf/convert.ts';
import { withMergedSubnet } from '../export/gguf/merged-subnet.ts';

interface ExportCliOptions { model: string; adapter?: string; subnet?: string; format: 'gguf'; type: GgufOutType; out: string }

function printGgufReport(r: GgufExportReport, out: string): void {
  const quantized = r.notes.filter((n) => n.note.startsWith('quantized'));
  const other = r.notes.filter((n) => !n.note.startsWith('quantized'));
  const worst = quantized.reduce((m, n) => Math.max(m, n.maxError ?? 0), 0);
  process.stdout.write(
    `architecture    ${r.arch}${r.perLayer ? ' (per-layer MLP widths / head counts)' : ''}\n` +
    `tensors         ${r.tensors}, ${(r.bytes / 2 ** 20).toFixed(2)} MiB\n` +
    (quantized.length ? `quantized       ${quantized.length} tensors, max |error| ${worst.toExponential(2)}\n` : '') +
    other.map((n) => `note            ${n.tensor} (${n.type}): ${n.note}\n`).join('') +
    `written to      ${resolve(out)}\n`);
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model (or a merged sub-network) for another runtime: GGUF for llama.cpp and ollama')
    .requiredOption('--model <dir>', 'model directory (Hugging Face layout, e.g. the output of lonas extract --merge)')
    .option('--adapter <dir>', 'elastic adapter to merge on the way')
    .option('--subnet <spec>', 'with --adapter: maximal, heuristic, minimal, or a JSON file (default maximal)')
    .addOption(new Option('--format <format>', 'output format').choices(['gguf']).makeOptionMandatory())
    .addOption(new Option('--type <type>', 'gguf: storage type of the 2-D float tensors (norms stay f32; GPTQ projections become q4_1)').choices([...GGUF_TYPES]).default('f32'))
    .requiredOption('--out <file>', 'output file')
    .action((o: ExportCliOptions) => {
      if (o.subnet && !o.adapter) throw new Error('--subnet needs --adapter (a sub-network is a configuration of an elastic adapter)');
      const run = (dir: string) => {
        switch (o.format) {
          case 'gguf':
            printGgufReport(exportGguf(dir, o.out, o.type), o.out);
            break;
          default:
            throw new Error(`--format ${String(o.format)} is not supported`);
        }
      };
      if (o.adapter) withMergedSubnet(o.model, o.adapter, o.subnet, run);
      else run(o.model);
    });
}
