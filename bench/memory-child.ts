/**
 * One `lonas` command for `npm run bench -- memory`, run in this process so that its own getrusage tells the peak:
 * `node --import tsx bench/memory-child.ts RESULT.json ARGS…` runs `lonas ARGS…` and, on exit, writes
 * { code, seconds, maxRssBytes } (process.resourceUsage().maxRSS: the peak resident set of the whole process) to
 * RESULT.json (also when stopped by SIGTERM, the bench's --timeout). A child killed by SIGKILL (out of memory) writes nothing.
 */
import { writeFileSync } from 'node:fs';

const [result, ...args] = process.argv.slice(2);
if (!result) throw new Error('usage: memory-child.ts RESULT.json LONAS-ARGS…');
const started = performance.now();
process.on('exit', (code) => {
  const maxRssBytes = process.resourceUsage().maxRSS * 1024;
  writeFileSync(result, JSON.stringify({ code, seconds: (performance.now() - started) / 1000, maxRssBytes }));
});
// the bench's --timeout stops a child with SIGTERM: exit normally so that the peak so far is still written
process.on('SIGTERM', () => process.exit(143));
process.argv = [process.argv[0], 'lonas', ...args];
await import('../src/cli/main.ts');
