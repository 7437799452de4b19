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

/** ARC-Easy's train split: the small calibration set the GPTQ and Wanda tests use. */
export const ARC_EASY_CALIB = join(ASSETS, 'datasets', 'llm-adapters', 'dataset', 'ARC-Easy', 'train.json');

/** `lonas quantize` as the tests' small INT4 bases are made: 4 bits, group 32, 8 ARC-Easy samples of 64 tokens, `extra` flags. */
export function quantizeSmall(model: string, out: string, ...extra: string[]): string {
  return lonas(
    'quantize',
    '--model',
    model,
    '--bits',
    '4',
    '--group-size',
    '32',
    '--calib',
    ARC_EASY_CALIB,
    '--nsamples',
    '8',
    '--seqlen',
    '64',
    ...extra,
    '--out',
    out,
  );
}
