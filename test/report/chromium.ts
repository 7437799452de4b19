/**
 * Headless Chromium (Debian `chromium`) for report tests: a screenshot, the DOM after load, and the page's console
 * messages. The report has no scripts, so any console line (an uncaught error, a CSP violation, a failed load) is
 * a defect.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = '/usr/bin/chromium';
export const INSTALL_HINT = `headless Chromium is required at ${CHROMIUM} for the report tests: install it with \`apt-get install chromium\` (Debian)`;

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface ChromiumRun {
  status: number | null;
  stdout: string;
  stderr: string;
  console: string[];
}

/** Runs Chromium once on a local file with a fresh user-data dir (removed afterwards). */
export function runChromium(file: string, args: string[], timeoutMs = 90_000): ChromiumRun {
  if (!existsSync(CHROMIUM)) throw new Error(INSTALL_HINT);
  const profile = mkdtempSync(join(tmpdir(), 'lonas-chromium-'));
  try {
    const r = spawnSync(
      CHROMIUM,
      [...FLAGS, `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', ...args, pathToFileURL(file).href],
      {
        encoding: 'utf8',
        timeout: timeoutMs,
        maxBuffer: 64 << 20,
        cwd: tmpdir(),
      },
    );
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, console: consoleLines(r.stderr) };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The page's console messages and uncaught errors in Chromium's stderr log (`INFO:CONSOLE(…)] "…", source: …`). */
export function consoleLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /:CONSOLE[:(\]]/.test(l) || /Uncaught/.test(l));
}

/** Width and height from a PNG's IHDR chunk. */
export function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.toString('latin1', 1, 4) !== 'PNG') throw new Error('not a PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
