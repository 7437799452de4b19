/** Running the `lonas` CLI from tests as a user would (bin/lonas.js in a child process). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ASSETS } from './assets.ts';

const BIN = fileURLToPath(new URL('../../bin/lonas.js', import.meta.url));

/** Runs `lonas ...args`, asserts it succeeded (its stderr in the message otherwise), returns its stdout. */
export function lonas(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `lonas ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

/** Runs `lonas ...args`, asserts it succeeded, returns what it printed on stdout and stderr (the log). */
export function lonasWithLog(...args: string[]): { stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `lonas ${args.join(' ')}\n${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** stories260K's reference greedy text, a small perplexity corpus. */
export const STORIES_TEXT = join(ASSETS, 'models', 'stories260K', 'expected_greedy_256_from_bos.f32.txt');

/** `lonas perplexity MODEL… --text STORIES_TEXT --json` parsed. */
export function perplexity(...model: string[]): { nll: number } {
  return JSON.parse(lonas('perplexity', ...model, '--text', STORIES_TEXT, '--json')) as { nll: number };
}
