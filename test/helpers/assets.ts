/** Where the shared offline assets live: $LONAS_ASSETS, else ../shared/assets beside the repository. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const ASSETS = process.env.LONAS_ASSETS ?? fileURLToPath(new URL('../../../shared/assets', import.meta.url));

export function asset(...parts: string[]): string {
  const p = join(ASSETS, ...parts);
  if (!existsSync(p)) throw new Error(`test asset missing: ${p} (set LONAS_ASSETS to the shared assets directory)`);
  return p;
}

export const STORIES_F32 = () => asset('models', 'stories260K', 'hf-f32');
export const STORIES_BF16 = () => asset('models', 'stories260K', 'hf-bf16');
