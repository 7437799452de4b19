/**
 * One `lonas` command for `npm run bench -- memory`, run in this process so that its own getrusage tells the peak:
 * `node --import tsx bench/memory-child.ts RESULT.json ARGS…` runs `lonas ARGS…` and, on exit, writes
 * { code, seconds, maxRssBytes } (process.resourceUsage().maxRSS: the peak resident set of the whole process) to
 * RESULT.json. A child killed (out of memory, or by the bench's --timeout, which reads its peak from /proc) writes nothing.
 */
import { writeFileSync } from 'node:fs';

const [result, ...args] = process.argv.slice(2);
if (!result) throw new Error('usage: memory-child.ts RESULT.json LONAS-ARGS…');
const started = performance.now();
process.on('exit', (code) => {
  const maxRssBytes = process.resourceUsage().maxRSS * 1024;
  writeFileSync(result, JSON.stringify({ code, seconds: (performance.now() - started) / 1000, maxRssBytes }));
});
process.argv = [process.argv[0], 'lonas', ...args];
await import('../src/cli/main.ts');
