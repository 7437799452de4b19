/**
 * The one point where the exporters (gguf/, onnx/) touch lonas's training-side internals: an adapter and a sub-network are
 * merged into a plain model directory (exactly `lonas extract --merge`, layer by layer, F32; a GPTQ base stays
 * GPTQ, on its own grid) in a temporary directory that is removed afterwards; exporters then read that
 * directory like any Hugging Face checkpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { streamExtract } from '../nas/extract-stream.ts';
import type { Requantization } from '../nas/extract.ts';

/**
 * Runs `use` on a merged model directory of `modelDir` + `adapterDir` at `subnet` (default maximal), with
 * what requantising onto a GPTQ base's grid changed (null: nothing was requantised).
 */
export function withMergedSubnet<T>(
  modelDir: string,
  adapterDir: string,
  subnet: string | undefined,
  use: (dir: string, requantization: Requantization | null) => T,
): T {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-export-'));
  try {
    const { requantization } = streamExtract(modelDir, adapterDir, subnet, dir, { merge: true, dtype: 'F32' });
    return use(dir, requantization);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
