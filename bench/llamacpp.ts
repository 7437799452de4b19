/**
 * llama.cpp's own tools for `npm run bench -- vs-llamacpp`: built from the source node-llama-cpp 3.21.1 ships
 * (`llama/gitRelease.bundle` in test/engines/llama-cpp, a git bundle of the llama.cpp commit it binds), natively
 * for this CPU (cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF, Release, AMX off (below); targets llama-bench and llama-quantize only,
 * -j2, under nice), cached outside the repository in $LONAS_LLAMACPP_CACHE or
 * ~/.cache/lonas/llama.cpp-<node-llama-cpp version>-<commit> (src/, build/, cmake.log, build.log and
 * lonas-build.json, the flags of the finished build; a cache without it or with other flags is rebuilt
 * incrementally, so an interrupted build resumes).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../src/io/files.ts';
import { log, median } from './common.ts';

const NODE_LLAMA_CPP = fileURLToPath(new URL('../test/engines/llama-cpp/node_modules/node-llama-cpp/', import.meta.url));
// No AMX: on this project's Xeon VM (AMX advertised and usable) ggml's AMX matmul of this commit dies with SIGILL at
// its first `tilezero` on Q4_0 weights, and the issue's reference machine (Zen 4) has none; explicit -mno-amx-*
// win over -march=native in GCC, so the rest of the native ISA (AVX-512, VNNI, BF16) stays.
const NO_AMX = '-mno-amx-tile -mno-amx-int8 -mno-amx-bf16';
const CMAKE_FLAGS = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DGGML_NATIVE=ON',
  '-DLLAMA_CURL=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_SERVER=OFF',
  `-DCMAKE_C_FLAGS=${NO_AMX}`,
  `-DCMAKE_CXX_FLAGS=${NO_AMX}`,
];
const TARGETS = ['llama-bench', 'llama-quantize'];

export interface LlamaCppTools {
  bench: string;
  quantize: string;
  /** node-llama-cpp's version and the llama.cpp commit of its bundle */
  version: string;
  commit: string;
  dir: string;
}

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: ${cmd} ${args.join(' ')} exited with ${r.status}:\n${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** Runs `cmd` under nice, its whole output written to `logFile`; `onLine` sees each output line (progress). */
function runLogged(cmd: string, args: string[], logFile: string, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nice', ['-n', '10', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let pending = '';
    const take = (b: Buffer) => {
      out.push(b);
      const lines = (pending + b.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      writeFileAtomic(logFile, Buffer.concat(out));
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}; its output is in ${logFile}`));
    });
  });
}

/** One progress line on a terminal (rewritten in place, cleared at the end); every 10 % otherwise. */
function progressLine(): { show: (pct: number, text: string) => void; done: () => void } {
  const tty = process.stderr.isTTY;
  let lastDecile = -1;
  return {
    show(pct, text) {
      if (tty) process.stderr.write(`\r\x1b[K  [${String(pct).padStart(3)}%] ${text.slice(0, 100)}`);
      else if (Math.floor(pct / 10) > lastDecile) {
        lastDecile = Math.floor(pct / 10);
        log(`  [${String(pct).padStart(3)}%] ${text.slice(0, 100)}`);
      }
    },
    done() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

/** llama-bench and llama-quantize, built (or reused from the cache) from node-llama-cpp's bundled llama.cpp source. */
export async function ensureLlamaCpp(): Promise<LlamaCppTools> {
  const bundle = join(NODE_LLAMA_CPP, 'llama', 'gitRelease.bundle');
  if (!existsSync(bundle)) {
    throw new Error(`${bundle} is missing: install the test engine first (cd test/engines/llama-cpp && npm ci, as scripts/test.sh does)`);
  }
  const version = (readJsonFile(join(NODE_LLAMA_CPP, 'package.json'), "node-llama-cpp's package.json") as { version: string }).version;
  const commit = run('git', ['bundle', 'list-heads', bundle], 'llama.cpp bundle').trim().split(/\s+/)[0];
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`${bundle}: git bundle list-heads gave no commit ('${commit}')`);
  const dir = process.env.LONAS_LLAMACPP_CACHE ?? join(homedir(), '.cache', 'lonas', `llama.cpp-${version}-${commit.slice(0, 8)}`);
  const src = join(dir, 'src'),
    build = join(dir, 'build'),
    stamp = join(dir, 'lonas-build.json');
  const tools: LlamaCppTools = {
    bench: join(build, 'bin', 'llama-bench'),
    quantize: join(build, 'bin', 'llama-quantize'),
    version,
    commit,
    dir,
  };
  const wanted = { commit, flags: CMAKE_FLAGS, targets: TARGETS };
  const built = existsSync(stamp) && JSON.stringify(readJsonFile(stamp, 'the llama.cpp build stamp')) === JSON.stringify(wanted);
  if (built && existsSync(tools.bench) && existsSync(tools.quantize)) {
    log(`llama.cpp ${commit.slice(0, 8)} (node-llama-cpp ${version}): reusing the build in ${dir}`);
    return tools;
  }
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(src, 'CMakeLists.txt'))) {
    log(`llama.cpp: cloning ${bundle} into ${src}`);
    const tmp = `${src}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    run('git', ['clone', '-q', '--no-checkout', bundle, tmp], 'llama.cpp clone');
    run('git', ['-C', tmp, '-c', 'advice.detachedHead=false', 'checkout', '-q', commit], 'llama.cpp checkout');
    rmSync(src, { recursive: true, force: true });
    renameSync(tmp, src);
  }
  log(`llama.cpp: building ${TARGETS.join(', ')} natively (cmake ${CMAKE_FLAGS.join(' ')}; -j2 under nice; minutes on 2 cores)`);
  const progress = progressLine();
  await runLogged('cmake', ['-S', src, '-B', build, ...CMAKE_FLAGS], join(dir, 'cmake.log'), () => {});
  await runLogged('cmake', ['--build', build, '--target', ...TARGETS, '-j2'], join(dir, 'build.log'), (line) => {
    const m = /^\[\s*(\d+)%\]\s*(.*)$/.exec(line);
    if (m) progress.show(Number(m[1]), m[2]);
  });
  progress.done();
  for (const bin of [tools.bench, tools.quantize])
    if (!existsSync(bin)) throw new Error(`llama.cpp build finished without ${bin} (see ${dir}/build.log)`);
  writeJsonAtomic(stamp, wanted);
  log(`llama.cpp: built in ${dir}`);
  return tools;
}

/** Tokens/s of one llama-bench invocation: prefill of `prompt` tokens into an empty context, decode of `gen` at depth `depth`. */
export interface LlamaBenchResult {
  prefill_tok_s: number;
  decode_tok_s: number;
  model_type: string;
}

interface LlamaBenchRow {
  samples_ts: number[];
  model_type: string;
}

/**
 * Runs llama-bench on `gguf` at `threads` threads with `reps` repetitions (each after its own warm-up run), twice:
 * pp`prompt` into an empty context, then tg`gen` at depth `depth` (lonas decodes after its prompt, so both
 * decode over the same context lengths; one run of `-d 0,depth` would also time the unused pp at depth and tg
 * at 0). Medians of the repetitions.
 */
export function llamaBench(
  tools: LlamaCppTools,
  gguf: string,
  o: { threads: number; reps: number; prompt: number; gen: number; depth: number },
): LlamaBenchResult {
  const one = (test: string[]) => {
    const args = ['-m', gguf, ...test, '-t', String(o.threads), '-r', String(o.reps), '-o', 'json'];
    const rows = JSON.parse(run(tools.bench, args, 'llama-bench')) as LlamaBenchRow[];
    if (rows.length !== 1 || !Array.isArray(rows[0].samples_ts))
      throw new Error(`llama-bench ${args.join(' ')}: expected one result row, got ${rows.length}`);
    return rows[0];
  };
  const pp = one(['-p', String(o.prompt), '-n', '0']);
  const tg = one(['-p', '0', '-n', String(o.gen), '-d', String(o.depth)]);
  return { prefill_tok_s: median(pp.samples_ts), decode_tok_s: median(tg.samples_ts), model_type: pp.model_type };
}

/**
 * `llama-quantize [--pure] src dst TYPE`; returns how many tensors it stored in each type (from its log), e.g.
 * { q4_0: 210, q8_0: 1, f32: 61 } for Q4_0's default mix of the 135M shape.
 */
export function llamaQuantize(tools: LlamaCppTools, src: string, dst: string, type: string, pure: boolean): Record<string, number> {
  const r = spawnSync(tools.quantize, [...(pure ? ['--pure'] : []), src, dst, type, '1'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0)
    throw new Error(`llama-quantize ${src} ${type} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr.slice(-2000)}`);
  const counts: Record<string, number> = {};
  for (const m of `${r.stdout}\n${r.stderr}`.matchAll(/type =\s*(\w+),\s*(?:converting to (\w+)|size =)/g)) {
    const t = m[2] ?? m[1];
    counts[t] = (counts[t] ?? 0) + 1;
  }
  return counts;
}
