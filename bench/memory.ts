/**
 * `npm run bench -- memory` (issue 15): can every command run the paper's model on this machine? A random BF16
 * checkpoint with the Llama-2-7B shapes (hidden 4096, intermediate 11008, 32 heads, vocab 32000; `--layers N`, 32 by
 * default), one shard per decoder layer, is written to a temporary directory (removed afterwards; free disk is
 * checked first). Each command then runs in a child process (bench/memory-child.ts) as a user would run it: inspect,
 * bench, finetune (LoNAS space, r 32, micro-batch 4 × seq, checkpointed as the 7B needs on 24 GB), search
 * (2 evaluations), extract --merge, merge, sparsify and quantize (calib samples × 512 tokens). Per command: peak RSS
 * (the child's getrusage maxrss) ÷ the checkpoint's weight bytes, and seconds. Goals: peak ≤ 1.25 × weight bytes for
 * every command; quantize of the 32-layer shape in under 1 h (projected from --layers by the layer count).
 *
 * Options: --layers N (32), --seq N (256: finetune tokens per example), --steps N (2), --calib N (32 calibration
 * samples), --calib-len N (512), --timeout S (stop a command after S seconds, reporting its peak so far), --skip a,b
 * (commands not to run: later ones that need their output fail), --tmp DIR (os.tmpdir()), --keep (leave the directory),
 * --work DIR (run in DIR, kept afterwards; a checkpoint and data already there from a --keep run are reused, so one slow
 * command can be rerun alone without writing the 13.5 GB again).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/tensor/index.ts';
import { parseHfConfig } from '../src/models/llama/hf-config.ts';
import { llamaWeightTable } from '../src/models/llama/weights.ts';
import type { LlamaTensor } from '../src/models/llama/weights.ts';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { INDEX_FILE, CONFIG_FILE, hfJson } from '../src/io/hf-dir.ts';
import { log, machineBusy, round } from './common.ts';

interface MemoryBenchOptions {
  layers: number;
  seq: number;
  steps: number;
  calib: number;
  calibLen: number;
  tmp: string;
  keep: boolean;
  /** a kept work directory to reuse ('' : a new temporary one) */
  work: string;
  /** seconds after which a command is stopped (reported with its peak so far); 0: none */
  timeout: number;
  skip: string[];
}

const GIB = 2 ** 30;
const HIDDEN = 4096,
  INTERMEDIATE = 11008,
  HEADS = 32,
  VOCAB = 32000;

function parse(args: string[]): MemoryBenchOptions {
  const o: MemoryBenchOptions = {
    layers: 32,
    seq: 256,
    steps: 2,
    calib: 32,
    calibLen: 512,
    tmp: tmpdir(),
    keep: false,
    work: '',
    timeout: 0,
    skip: [],
  };
  const ints = {
    '--layers': 'layers',
    '--seq': 'seq',
    '--steps': 'steps',
    '--calib': 'calib',
    '--calib-len': 'calibLen',
    '--timeout': 'timeout',
  } as const;
  for (let i = 0; i < args.length; i++) {
    const key = args[i];
    if (key === '--keep') o.keep = true;
    else if (key === '--tmp') o.tmp = args[++i] ?? '';
    else if (key === '--work') o.work = args[++i] ?? '';
    else if (key === '--skip') o.skip = (args[++i] ?? '').split(',');
    else if (key in ints) {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${key} needs a positive integer, got '${args[i]}'`);
      o[ints[key as keyof typeof ints]] = n;
    } else
      throw new Error(
        `unknown option '${key}' (valid: --layers N --seq N --steps N --calib N --calib-len N --timeout S --skip a,b --tmp DIR --keep --work DIR)`,
      );
  }
  return o;
}

function hfConfig(layers: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: HIDDEN,
    intermediate_size: INTERMEDIATE,
    num_attention_heads: HEADS,
    num_key_value_heads: HEADS,
    num_hidden_layers: layers,
    vocab_size: VOCAB,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

/** bf16 bits of U(−a, a) with std 0.02 (norms: 1.0), from a seeded xorshift32: the values do not matter, only the sizes. */
function randomBf16(row: LlamaTensor, seed: number): Uint16Array {
  const n = row.shape.reduce((a, b) => a * b, 1);
  const out = new Uint16Array(n);
  if (row.name.endsWith('norm.weight')) return out.fill(0x3f80);
  const f = new Float32Array(1),
    u = new Uint32Array(f.buffer);
  const a = 0.02 * Math.sqrt(3);
  let s = (new Rng(seed).nextUint32() | 1) >>> 0;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[0] = ((s >>> 0) / 4294967296 - 0.5) * 2 * a;
    out[i] = u[0] >>> 16;
  }
  return out;
}

/** Writes the checkpoint shard by shard (one decoder layer each; the embedding with the first, the head with the last). */
function writeCheckpoint(dir: string, layers: number, tokenizerDir: string): void {
  mkdirSync(dir, { recursive: true });
  const json = hfConfig(layers);
  const table = llamaWeightTable(parseHfConfig(json, 'bench config'));
  const shards: LlamaTensor[][] = Array.from({ length: layers }, () => []);
  for (const row of table.all) shards[row.layer ?? (row === table.embed ? 0 : layers - 1)].push(row);
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((rows, s) => {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(layers).padStart(5, '0')}.safetensors`;
    const tensors = Object.fromEntries(
      rows.map((r, k) => [r.name, { dtype: 'BF16' as const, shape: r.shape, data: randomBf16(r, 1000 * s + k) }]),
    );
    writeSafetensors(join(dir, file), tensors, { format: 'pt' });
    for (const r of rows) {
      weightMap[r.name] = file;
      total += 2 * r.shape.reduce((a, b) => a * b, 1);
    }
    log(`memory bench: wrote ${file} (${rows.length} tensors)`);
  });

  writeFileSync(join(dir, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
  writeFileSync(join(dir, CONFIG_FILE), `${hfJson(json)}\n`);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
    if (existsSync(join(tokenizerDir, f))) copyFileSync(join(tokenizerDir, f), join(dir, f));
}

/** An LLM-Adapters JSON file of `n` examples of ~`words` random words: training, validation and calibration data. */
function writeData(path: string, n: number, words: number): void {
  const vocab =
    'the of and to in is was for on with as by at from that this which time people year way day man thing woman life child world school state family student group country problem hand part place case week company system program question work government number night point home water room mother area money story fact month lot right study book eye job word business issue side kind head house service friend father power hour game line end member law car city community name president team minute idea kid body information back parent face others level office door health person art war history party result change morning reason research girl guy moment air teacher force education'.split(
      ' ',
    );
  const rng = new Rng(7);
  const text = (k: number) => Array.from({ length: k }, () => vocab[rng.int(vocab.length)]).join(' ');
  const examples = Array.from({ length: n }, () => ({ instruction: text(words), input: '', output: text(8), answer: 'a' }));
  writeFileSync(path, JSON.stringify(examples));
}

interface CommandResult {
  command: string;
  ok: boolean;
  timed_out: boolean;
  seconds: number;
  peak_rss_gib: number;
  peak_over_weights: number;
  log: string;
}

/** Peak resident set of a live process (Linux /proc VmHWM, the figure getrusage reports at its exit), bytes; NaN elsewhere. */
function liveHighWater(pid: number | undefined): number {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Runs `lonas args` in a child (bench/memory-child.ts) and reads its peak RSS and time. After `timeout` seconds (0: none)
 * the child's peak so far is read from /proc and it is killed: a busy child would not run a signal handler.
 */
async function runChild(name: string, args: string[], work: string, weightBytes: number, timeout: number): Promise<CommandResult> {
  const result = join(work, `${name}.result.json`);
  const script = fileURLToPath(new URL('./memory-child.ts', import.meta.url));
  log(`memory bench: lonas ${args.join(' ')}`);
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', script, result, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const stop: { at: { seconds: number; peak: number } | null } = { at: null }; // set by the timer
  const timer =
    timeout > 0
      ? setTimeout(() => {
          stop.at = { seconds: (performance.now() - started) / 1000, peak: liveHighWater(child.pid) };
          child.kill('SIGKILL');
        }, timeout * 1000)
      : null;
  const [code, signal] = await new Promise<[number | null, string | null]>((done) => child.on('close', (c, sig) => done([c, sig])));
  if (timer) clearTimeout(timer);
  writeFileSync(join(work, `${name}.log`), output);
  const m = existsSync(result) ? (JSON.parse(readFileSync(result, 'utf8')) as { seconds: number; maxRssBytes: number }) : null;
  const ok = code === 0 && m !== null;
  const why = stop.at ? `stopped after ${timeout} s (--timeout)` : signal ? `killed by ${signal}` : `exit ${code}`;
  if (!ok) log(`memory bench: ${name} failed (${why}):\n${output.slice(-2000)}`);
  const seconds = m?.seconds ?? stop.at?.seconds ?? NaN,
    peak = m?.maxRssBytes ?? stop.at?.peak ?? NaN;
  return {
    command: name,
    ok,
    timed_out: stop.at !== null,
    seconds: round(seconds, 1),
    peak_rss_gib: round(peak / GIB, 2),
    peak_over_weights: round(peak / weightBytes, 3),
    log: output,
  };
}

/** Training FLOPs per token of an L-layer model of these shapes, up to a constant: frozen projections (forward + input gradient + the recompute) and attention, the head. */
function trainCost(layers: number, seq: number): number {
  const perLayer = 3 * (4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTERMEDIATE + 2 * seq * HIDDEN);
  return layers * perLayer + 2 * VOCAB * HIDDEN;
}

export async function main(args: string[]): Promise<unknown> {
  const o = parse(args);
  const assets = process.env.LONAS_ASSETS ?? fileURLToPath(new URL('../../shared/assets', import.meta.url));
  const tokenizerDir = join(assets, 'tokenizers', 'llama2-hf-generated');
  if (!existsSync(join(tokenizerDir, 'tokenizer.json')))
    throw new Error(`${tokenizerDir}/tokenizer.json: missing (the Llama-2 tokenizer of the shared assets; set LONAS_ASSETS)`);
  const weightBytes = llamaWeightTable(parseHfConfig(hfConfig(o.layers), 'bench config')).all.reduce(
    (n, r) => n + 2 * r.shape.reduce((a, b) => a * b, 1),
    0,
  );
  // the base, one float32 output at a time (2×) and the adapter: 3.5× with headroom
  const need = 3.5 * weightBytes + GIB;
  mkdirSync(o.tmp, { recursive: true });
  const fs = statfsSync(o.tmp);
  const free = fs.bavail * fs.bsize;
  if (free < need)
    throw new Error(
      `memory bench: ${o.tmp} has ${(free / GIB).toFixed(1)} GiB free, the ${o.layers}-layer checkpoint (${(weightBytes / GIB).toFixed(1)} GiB) ` +
        `and the largest output beside it need about ${(need / GIB).toFixed(1)} GiB; free disk, pass --tmp DIR on a larger disk, or fewer --layers`,
    );
  const machine = await machineBusy();
  if (o.work) o.keep = true;
  if (o.work) mkdirSync(o.work, { recursive: true });
  const work = o.work || mkdtempSync(join(o.tmp, 'lonas-memory-bench-'));
  try {
    const model = join(work, 'base');
    const data = join(work, 'data.json');
    const reuse = existsSync(join(model, CONFIG_FILE)) && existsSync(data);
    if (reuse) {
      const layers = (JSON.parse(readFileSync(join(model, CONFIG_FILE), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers;
      if (layers !== o.layers)
        throw new Error(`memory bench: ${model} has ${layers} layers, not --layers ${o.layers}: pass --layers ${layers} or another --work`);
      log(`memory bench: reusing the ${o.layers}-layer checkpoint and data in ${work}`);
    } else {
      const started = performance.now();
      writeCheckpoint(model, o.layers, tokenizerDir);
      log(
        `memory bench: ${o.layers}-layer Llama-2-7B-shape BF16 checkpoint, ${(weightBytes / GIB).toFixed(2)} GiB, in ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
      writeData(data, Math.max(16, 4 * o.calib), Math.ceil(o.seq * 1.2));
    }
    const at = (d: string) => join(work, d);
    const steps: [string, string[], string?][] = [
      ['inspect', ['inspect', '--model', model]],
      ['bench', ['bench', '--model', model, '--prompt-len', '64', '--gen-len', '4', '--repeats', '1', '--warmup', '0']],
      [
        'finetune',
        [
          'finetune',
          '--model',
          model,
          '--data',
          data,
          '--out',
          at('adapter'),
          '--space',
          'lonas',
          '--rank',
          '32',
          '--batch-size',
          '4',
          '--grad-accum',
          '1',
          '--cutoff-len',
          String(o.seq),
          '--steps',
          String(o.steps),
          '--gradient-checkpointing',
          'on',
          '--checkpoint-every',
          '0',
        ],
      ],
      [
        'search',
        [
          'search',
          '--model',
          model,
          '--adapter',
          at('adapter'),
          '--out',
          at('search'),
          '--val',
          data,
          '--limit',
          '4',
          '--batch-size',
          '4',
          '--cutoff-len',
          String(o.seq),
          '--evals',
          '2',
          '--population',
          '2',
          '--no-candidates',
        ],
      ],
      [
        'extract --merge',
        ['extract', '--model', model, '--adapter', at('adapter'), '--subnet', at('search/best.json'), '--merge', '--out', at('extracted')],
        'extracted',
      ],
      ['merge', ['merge', '--model', model, '--adapter', at('adapter'), '--subnet', 'maximal', '--out', at('merged')], 'merged'],
      [
        'sparsify',
        [
          'sparsify',
          '--model',
          model,
          '--method',
          'wanda',
          '--calib',
          data,
          '--nsamples',
          String(o.calib),
          '--seqlen',
          String(o.calibLen),
          '--out',
          at('sparse'),
        ],
        'sparse',
      ],
      [
        'quantize',
        ['quantize', '--model', model, '--calib', data, '--nsamples', String(o.calib), '--seqlen', String(o.calibLen), '--out', at('int4')],
        'int4',
      ],
    ];
    const results: CommandResult[] = [];
    for (const [name, argv, output] of steps) {
      if (o.skip.includes(name.replace(/ .*/, ''))) continue;
      results.push(await runChild(name.replace(/ .*/, ''), argv, work, weightBytes, o.timeout));
      results[results.length - 1].command = name;
      if (output) rmSync(at(output), { recursive: true, force: true }); // one output on disk at a time
    }
    const ft = results.find((r) => r.command === 'finetune');
    const tps = Number(/(\d+) tokens\/s; adapter written/.exec(ft?.log ?? '')?.[1] ?? NaN);
    const estimate = /estimated peak ([\d.]+) (GiB|MiB)/.exec(ft?.log ?? '');
    const q = results.find((r) => r.command === 'quantize');
    log('\ncommand          peak RSS   ÷ weights   seconds');
    for (const r of results)
      log(
        `${r.command.padEnd(16)} ${`${r.peak_rss_gib.toFixed(2)} GiB`.padStart(9)}   ${r.peak_over_weights.toFixed(3).padStart(8)}   ${r.seconds.toFixed(1).padStart(7)}${r.ok ? '' : r.timed_out ? '   TIMED OUT' : '   FAILED'}`,
      );
    return {
      bench: 'memory',
      layers: o.layers,
      weight_gib: round(weightBytes / GIB, 3),
      machine_memory_gib: round(totalmem() / GIB, 1),
      commands: Object.fromEntries(results.map(({ command, log: _log, ...r }) => [command, r])),
      finetune: {
        tokens_per_s: tps,
        // the 32-layer run at the same micro-batch, scaled by the training FLOPs per token (checkpointed)
        tokens_per_s_7b_projected: round((tps * trainCost(o.layers, o.seq)) / trainCost(32, o.seq), 2),
        estimated_peak_gib: estimate ? round(Number(estimate[1]) / (estimate[2] === 'MiB' ? 1024 : 1), 2) : null,
      },
      goals: {
        // of the commands that ran (null when none did); --skip leaves the others unproven here
        peak_le_1_25x_weights: results.length ? results.every((r) => r.ok && r.peak_over_weights <= 1.25) : null,
        commands_run: results.map((r) => r.command),
        // a timed-out quantize took at least its seconds
        quantize_7b_projected_s: q ? round((q.seconds * 32) / o.layers, 0) : null,
        quantize_under_1h: q ? q.ok && (q.seconds * 32) / o.layers < 3600 : null,
      },
      options: o,
      machine,
    };
  } finally {
    if (o.keep) log(`memory bench: kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}
