/**
 * The one point where the exporters (gguf/, onnx/) touch lonas's training-side internals: an adapter and a sub-network are
 * merged into a plain model directory (exactly `lonas extract --merge`, F32; a GPTQ base stays GPTQ, on its
 * own grid) in a temporary directory that is removed afterwards; exporters then read that directory like
 * any Hugging Face checkpoint.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadWithAdapter } from '../nas/load.ts';
import { extractToDir } from '../nas/extract.ts';
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
    const { model } = loadWithAdapter(modelDir, adapterDir, subnet);
    const hfConfig = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { requantization } = extractToDir(model, dir, { merge: true, sourceDir: modelDir, hfConfig, dtype: 'F32' });
    return use(dir, requantization);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
