/**
 * Hugging Face model directories on disk: config.json plus model.safetensors, or shards listed by
 * model.safetensors.index.json (`weight_map`: tensor name → shard file), with the tokenizer and generation
 * files beside them. Nothing here knows the model: tensor names and data come from the caller
 * (models/llama/checkpoint.ts).
 *
 * Writing builds the complete directory next to the target and renames it into place, so a crash never
 * leaves a half-written model directory, and readers see the old model or the new one, never a mix.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { SafetensorsFile, plannedBytes, safetensorsHeader, tensorBytes, writeSafetensorsStreamed } from './safetensors.ts';
import type { TensorSpec, TensorToWrite } from './safetensors.ts';
import { readJsonFile } from './files.ts';

export const CONFIG_FILE = 'config.json';
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'] as const;

/** Files writeModelDir owns in a model directory; anything else (tokenizer files, …) is left alone. */
const isModelFile = (f: string) => f === CONFIG_FILE || f === SINGLE_FILE || f === INDEX_FILE || SHARD_RE.test(f);

/** config.json of the model directory `dir` as parsed JSON, with its path (for error messages). */
export function readConfigJson(dir: string): { configPath: string; hfConfig: unknown } {
  if (!existsSync(dir))
    throw new Error(`${dir}: model directory does not exist (pass a directory holding ${CONFIG_FILE} and ${SINGLE_FILE})`);
  if (!statSync(dir).isDirectory()) throw new Error(`${dir}: not a directory (pass the model directory, not a file inside it)`);
  const configPath = join(dir, CONFIG_FILE);
  return { configPath, hfConfig: readJsonFile(configPath, `a model directory needs ${CONFIG_FILE} next to its weights`) };
}

const indexSchema = z.object({ weight_map: z.record(z.string(), z.string()) }).passthrough();

/**
 * Opens the weight files of `dir` (single file or index + shards, every shard header validated): tensor
 * name → open file holding it. The caller closes `files`; on error everything is closed here.
 */
export function openWeights(dir: string): { files: SafetensorsFile[]; where: Map<string, SafetensorsFile> } {
  const files: SafetensorsFile[] = [];
  const where = new Map<string, SafetensorsFile>();
  try {
    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(indexPath)) {
      const parsed = indexSchema.safeParse(readJsonFile(indexPath, 'sharded weights index'));
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        throw new Error(
          `${indexPath}: field "${i.path.join('.')}" is invalid (${i.message}; expected {"weight_map": {tensor name: shard file}})`,
        );
      }
      const byShard = new Map<string, SafetensorsFile>();
      for (const [name, shard] of Object.entries(parsed.data.weight_map)) {
        // shard names are plain file names: never follow a path out of the model directory
        if (shard !== basename(shard) || shard.startsWith('.'))
          throw new Error(`${indexPath}: weight_map["${name}"] = "${shard}" is not a file name in the model directory`);
        let file = byShard.get(shard);
        if (!file) {
          if (!existsSync(join(dir, shard)))
            throw new Error(
              `${indexPath}: weight_map["${name}"] points to shard "${shard}", which does not exist in ${dir} (incomplete download?)`,
            );
          file = new SafetensorsFile(join(dir, shard));
          files.push(file);
          byShard.set(shard, file);
        }
        if (!file.has(name))
          throw new Error(
            `${indexPath}: weight_map["${name}"] points to "${shard}", but that shard has no tensor '${name}' (index and shards do not match)`,
          );
        where.set(name, file);
      }
    } else if (existsSync(join(dir, SINGLE_FILE))) {
      const file = new SafetensorsFile(join(dir, SINGLE_FILE));
      files.push(file);
      for (const name of file.entries.keys()) where.set(name, file);
    } else {
      const other = ['pytorch_model.bin', 'model.bin', 'consolidated.00.pth'].find((f) => existsSync(join(dir, f)));
      throw new Error(
        `${dir}: no weights found: expected ${SINGLE_FILE} or ${INDEX_FILE}` +
          (other ? ` (found ${other}; convert it to safetensors)` : ''),
      );
    }
    return { files, where };
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

/** A fingerprint samples SAMPLES evenly spaced chunks of SAMPLE_BYTES from each tensor (smaller tensors whole). */
const SAMPLES = 8;
const SAMPLE_BYTES = 4096;

export interface WeightsFingerprint {
  tensors: number;
  /** sha256 of every tensor's name, dtype and shape (sorted by name): the architecture and size */
  shapes_sha256: string;
  /** sha256 of sampled bytes of every tensor: the weights themselves */
  sample_sha256: string;
}

/**
 * What identifies the weights of `dir` without reading them all. Approximation: the weights are sampled
 * (8 × 4 KiB per tensor), so two models differing only outside the samples share a fingerprint; pruning,
 * quantizing or fine-tuning whole tensors changes it. Bytes, not values: the same values stored as F32 and
 * BF16, or under other tensor names, are different fingerprints.
 */
export function weightsFingerprint(dir: string): WeightsFingerprint {
  const { files, where } = openWeights(dir);
  try {
    const shapes = createHash('sha256'),
      samples = createHash('sha256');
    const names = [...where.keys()].sort();
    for (const name of names) {
      const file = where.get(name)!;
      const e = file.entry(name);
      shapes.update(`${name}\t${e.dtype}\t${e.shape.join('x')}\n`);
      const bytes = e.end - e.begin;
      samples.update(`${name}\n`);
      if (bytes <= SAMPLES * SAMPLE_BYTES) samples.update(file.readRawSlice(name, 0, bytes));
      else
        for (let k = 0; k < SAMPLES; k++)
          samples.update(file.readRawSlice(name, Math.floor((k * (bytes - SAMPLE_BYTES)) / (SAMPLES - 1)), SAMPLE_BYTES));
    }
    return { tensors: names.length, shapes_sha256: shapes.digest('hex'), sample_sha256: samples.digest('hex') };
  } finally {
    for (const f of files) f.close();
  }
}

export interface WriteModelDirOptions {
  /** shard when the weights exceed this many bytes */
  shardBytes: number;
  /** replace the model files of a directory that already holds a model (other files are kept) */
  overwrite?: boolean;
  /** writes further files (tokenizer, adapter, records) into the new directory before it replaces the target */
  finish?: (tmpDir: string) => void;
}

/**
 * Writes a model directory tensor by tensor, so a caller can produce one layer, write it and free it.
 * `groups` announce every tensor (name, dtype, shape) in file order up front; a group (e.g. the
 * qweight/qzeros/scales/g_idx of one GPTQ module) stays in one shard. Sharding is greedy (a new shard
 * when the next group would pass shardBytes; a group larger than shardBytes gets a shard of its own): one
 * model.safetensors, or model-0000i-of-0000N.safetensors plus model.safetensors.index.json as Hugging Face
 * writes them. Everything goes to a temporary directory beside the target; `finish` renames it into place
 * (see swapIn), `abort` removes it, so the target holds the old model or the new one, never a mix.
 */
export class ModelDirWriter {
  private readonly target: string;
  private readonly existing: string[];
  private readonly tmp: string;
  private readonly shards: { file: string; specs: Record<string, TensorSpec> }[] = [];
  /** tensor name → [shard index, byte offset in its file] */
  private readonly where = new Map<string, [number, number]>();
  private readonly order: string[];
  private next = 0;
  private fds: number[] = [];
  private total = 0;

  constructor(dir: string, groups: Record<string, TensorSpec>[], opts: WriteModelDirOptions) {
    const plan: Record<string, TensorSpec>[] = [{}];
    let used = 0;
    for (const group of groups) {
      const bytes = Object.values(group).reduce((a, t) => a + plannedBytes(t), 0);
      if (used > 0 && used + bytes > opts.shardBytes) {
        plan.push({});
        used = 0;
      }
      Object.assign(plan[plan.length - 1], group);
      used += bytes;
      this.total += bytes;
    }
    this.target = resolve(dir);
    if (existsSync(this.target) && !statSync(this.target).isDirectory()) throw new Error(`${this.target}: exists and is not a directory`);
    this.existing = existsSync(this.target) ? readdirSync(this.target) : [];
    if (this.existing.some(isModelFile) && !opts.overwrite) {
      throw new Error(
        `${this.target}: already holds a model (${this.existing.filter(isModelFile).join(', ')}); choose another directory or pass overwrite: true`,
      );
    }
    const name = (i: number) =>
      plan.length === 1 ? SINGLE_FILE : `model-${String(i + 1).padStart(5, '0')}-of-${String(plan.length).padStart(5, '0')}.safetensors`;
    this.order = plan.flatMap((specs) => Object.keys(specs));
    mkdirSync(dirname(this.target), { recursive: true });
    this.tmp = mkdtempSync(join(dirname(this.target), `.${basename(this.target)}.tmp-`));
    plan.forEach((specs, i) => this.shards.push({ file: name(i), specs }));
  }

  /** Writes the next tensor; it must be the next one announced, with the announced dtype and shape. */
  put(name: string, t: TensorToWrite): void {
    const expected = this.order[this.next];
    if (name !== expected)
      throw new Error(`ModelDirWriter: got '${name}', expected '${expected ?? '(no more tensors)'}' next (a bug in the caller)`);
    const shard = this.shards.findIndex((s) => name in s.specs);
    const spec = this.shards[shard].specs[name];
    if (spec.dtype !== t.dtype || spec.shape.join() !== t.shape.join())
      throw new Error(
        `ModelDirWriter: '${name}' is ${t.dtype} [${t.shape.join(', ')}], announced as ${spec.dtype} [${spec.shape.join(', ')}]`,
      );
    if (this.fds.length === shard) {
      const { head, offsets } = safetensorsHeader(this.shards[shard].specs, { format: 'pt' }); // transformers refuses safetensors files without format metadata
      this.fds.push(openSync(join(this.tmp, this.shards[shard].file), 'w'));
      writeAll(this.fds[shard], head, 0);
      for (const [n, o] of offsets) this.where.set(n, [shard, o]);
    }
    this.write(name, t);
    this.next++;
  }

  /** Writes a tensor already put once again (same dtype and shape), e.g. once a format is known at the end. */
  rewrite(name: string, t: TensorToWrite): void {
    if (this.order.indexOf(name) >= this.next) throw new Error(`ModelDirWriter: '${name}' was not written yet (a bug in the caller)`);
    this.write(name, t);
  }

  private write(name: string, t: TensorToWrite): void {
    const [shard, offset] = this.where.get(name)!;
    writeAll(this.fds[shard], tensorBytes(name, t), offset);
  }

  /** Writes config.json (and the index when sharded), then puts the directory in place. */
  finish(configJson: string): void {
    if (this.next !== this.order.length)
      throw new Error(
        `ModelDirWriter: ${this.order.length - this.next} tensors not written, first '${this.order[this.next]}' (a bug in the caller)`,
      );
    this.closeFiles();
    writeFileSync(join(this.tmp, CONFIG_FILE), configJson);
    if (this.shards.length > 1) {
      const weightMap: Record<string, string> = {};
      for (const s of this.shards) for (const n of Object.keys(s.specs)) weightMap[n] = s.file;
      writeFileSync(
        join(this.tmp, INDEX_FILE),
        `${JSON.stringify({ metadata: { total_size: this.total }, weight_map: weightMap }, null, 2)}\n`,
      );
    }
    swapIn(this.tmp, this.target, this.existing);
  }

  /** Removes the temporary directory (the target is untouched). */
  abort(): void {
    this.closeFiles();
    rmSync(this.tmp, { recursive: true, force: true });
  }

  private closeFiles(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds = [];
  }
}

function writeAll(fd: number, b: Uint8Array, position: number): void {
  let done = 0;
  while (done < b.length) done += writeSync(fd, b, done, b.length - done, position + done);
}

/**
 * Writes `configJson` as config.json and the tensors as model.safetensors, or as shards plus
 * model.safetensors.index.json when they exceed `shardBytes` (see ModelDirWriter). The new files appear all at once.
 */
export function writeModelDir(dir: string, configJson: string, groups: Record<string, TensorToWrite>[], opts: WriteModelDirOptions): void {
  writeModelDirStreamed(dir, configJson, groups, (k) => groups[k], opts);
}

/**
 * writeModelDir with the tensors planned up front (`plan`: per group, name → dtype and shape) and produced
 * one group at a time, in order, by `produce(k)` while its shard is written: memory holds the group being
 * written, not the model. Each produced group must match its plan.
 */
export function writeModelDirStreamed(
  dir: string,
  configJson: string,
  plan: Record<string, TensorSpec>[],
  produce: (group: number) => Record<string, TensorToWrite>,
  opts: WriteModelDirOptions,
): void {
  const shards: number[][] = [[]];
  let used = 0,
    total = 0;
  plan.forEach((group, k) => {
    const bytes = Object.values(group).reduce((a, t) => a + plannedBytes(t), 0);
    if (used > 0 && used + bytes > opts.shardBytes) {
      shards.push([]);
      used = 0;
    }
    shards[shards.length - 1].push(k);
    used += bytes;
    total += bytes;
  });
  const target = resolve(dir);
  if (existsSync(target) && !statSync(target).isDirectory()) throw new Error(`${target}: exists and is not a directory`);
  const existing = existsSync(target) ? readdirSync(target) : [];
  if (existing.some(isModelFile) && !opts.overwrite) {
    throw new Error(
      `${target}: already holds a model (${existing.filter(isModelFile).join(', ')}); choose another directory or pass overwrite: true`,
    );
  }
  mkdirSync(dirname(target), { recursive: true });
  const tmp = mkdtempSync(join(dirname(target), `.${basename(target)}.tmp-`));
  try {
    writeFileSync(join(tmp, CONFIG_FILE), configJson);
    const meta = { format: 'pt' }; // transformers refuses safetensors files without format metadata
    const weightMap: Record<string, string> = {};
    shards.forEach((groups, i) => {
      const file =
        shards.length === 1
          ? SINGLE_FILE
          : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      const shardPlan = Object.assign({}, ...groups.map((k) => plan[k])) as Record<string, TensorSpec>;
      function* tensors(): Generator<[string, TensorToWrite]> {
        for (const k of groups) yield* Object.entries(produce(k));
      }
      writeSafetensorsStreamed(join(tmp, file), shardPlan, tensors(), meta);
      for (const name of Object.keys(shardPlan)) weightMap[name] = file;
    });
    if (shards.length > 1)
      writeFileSync(join(tmp, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
    opts.finish?.(tmp);
    swapIn(tmp, target, existing);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Puts the finished directory `tmp` at `target`. A non-empty target is moved aside first; its non-model
 * files are then moved into the new directory and the old one removed. Readers see the old model or the
 * new one, never a mix. Files the new directory already has (written by `finish`) win over the old ones.
 */
function swapIn(tmp: string, target: string, existing: string[]): void {
  if (existing.length === 0) {
    if (existsSync(target)) rmSync(target, { recursive: true }); // empty directory
    renameSync(tmp, target);
    return;
  }
  const old = `${tmp}.old`;
  renameSync(target, old);
  renameSync(tmp, target);
  const fresh = new Set(readdirSync(target)); // what `finish` wrote replaces the old copy
  for (const f of existing) if (!isModelFile(f) && !fresh.has(f)) renameSync(join(old, f), join(target, f));
  rmSync(old, { recursive: true, force: true });
}

/** Fields transformers types as float: written with a decimal point (10000.0) as Python's json does. */
const FLOAT_KEYS = new Set([
  'rope_theta',
  'rms_norm_eps',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'attention_factor',
  'beta_fast',
  'beta_slow',
  'partial_rotary_factor',
  'attention_dropout',
  'initializer_range',
  'hidden_dropout',
  'mlp_dropout',
]);

/** JSON like transformers' save_pretrained: sorted keys, 2-space indent, floats kept floats. */
export function hfJson(v: unknown, indent = '', key = ''): string {
  const inner = `${indent}  `;
  if (typeof v === 'number' && FLOAT_KEYS.has(key) && Number.isInteger(v)) return v.toFixed(1);
  if (Array.isArray(v)) return v.length ? `[\n${v.map((x) => inner + hfJson(x, inner)).join(',\n')}\n${indent}]` : '[]';
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  const keys = Object.keys(v)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  if (!keys.length) return '{}';
  return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${hfJson((v as Record<string, unknown>)[k], inner, k)}`).join(',\n')}\n${indent}}`;
}

/** Copies the tokenizer/generation files present in srcDir to dstDir (written fresh, not read-only); returns the copied names. */
export function copyTokenizerFiles(srcDir: string, dstDir: string): string[] {
  const copied: string[] = [];
  mkdirSync(dstDir, { recursive: true });
  for (const f of TOKENIZER_FILES) {
    const src = join(srcDir, f);
    if (!existsSync(src)) continue;
    const tmp = join(dstDir, `.${f}.${process.pid}.tmp`);
    writeFileSync(tmp, readFileSync(src));
    renameSync(tmp, join(dstDir, f));
    copied.push(f);
  }
  return copied;
}
