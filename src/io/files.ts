/** Small file helpers: atomic writes (temp file + rename) so an interrupted run never leaves a corrupt file; JSON reads that name the file. */
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * Streams a file through `write(put)` into `<path>.<pid>.tmp` and renames it into place; on any error the
 * temporary file is removed, so `path` is either the old file or the complete new one.
 */
export function writeStreamAtomic(path: string, write: (put: (bytes: Uint8Array) => void) => void): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    write((b) => {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    });
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Reads and parses a JSON file. Errors name the file: "<path>: missing (<what>)", "<path>: cannot read (EACCES)"
 * or "<path>: not valid JSON (<parser message>)"; `what` says what the file is for (e.g. "the model's config").
 */
export function readJsonFile(path: string, what = 'a JSON file'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path}: missing (${what})` : `${path}: cannot read (${code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}
