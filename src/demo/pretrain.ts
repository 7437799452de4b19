/**
 * Pretraining the demo's base model: a small Llama (GQA, tied embeddings) initialised at random and trained
 * on every parameter (AdamW, warm-up + cosine, gradient clipping) over the demo's pretraining corpus
 * (src/demo/tasks.ts), packed into fixed-length rows. The result is a Hugging Face model directory
 * (config.json, model.safetensors, the demo tokenizer's files from src/demo/tokenizer.ts) plus
 * `lonas_pretrain.json` recording the settings, the loss curve, timings, greedy samples and a knowledge probe.
 *
 * Caching: the directory is reused when its `lonas_pretrain.json` carries the same settings hash (model
 * plan, training hyper-parameters, seed, corpus, tokenizer); anything else retrains and replaces it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Rng, Tensor, backward, noGrad } from '../tensor/index.ts';
import { randomNormal } from '../nn/modules.ts';
import { uniformConfig } from '../models/llama/config.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { LlamaModel } from '../models/llama/model.ts';
import { causalLmLoss } from '../models/llama/loss.ts';
import { saveModelDir } from '../models/llama/checkpoint.ts';
import { llamaWeightTable } from '../models/llama/weights.ts';
import { CONFIG_FILE, SINGLE_FILE, TOKENIZER_FILES } from '../io/hf-dir.ts';
import { generate } from '../models/llama/generate.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import type { LonasTokenizer } from '../io/tokenizer.ts';
import { writeJsonAtomic } from '../io/files.ts';
import { AdamW } from '../train/adamw.ts';
import { cosineWithWarmup } from '../train/schedule.ts';
import { clipGradNorm } from '../train/grad-clip.ts';
import { arithFacts, generateSuite } from './tasks.ts';
import { demoTokenizerFiles, writeDemoTokenizer } from './tokenizer.ts';

/** Bump when the training procedure changes in a way the settings do not show (invalidates caches). */
const PRETRAIN_FORMAT = 2;
export const PRETRAIN_META = 'lonas_pretrain.json';

/** Architecture and training budget of the demo base model. */
export interface PretrainPlan {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  /** optimizer steps */
  steps: number;
  /** rows per step */
  batchSize: number;
  /** tokens per packed row */
  seqLen: number;
  lr: number;
  /** the cosine schedule ends at lr · minLrFraction */
  minLrFraction: number;
  warmup: number;
  weightDecay: number;
  maxGradNorm: number;
  /** pretraining documents generated from the seed when no corpus is given */
  corpusDocs: number;
}

/**
 * Full: ~0.97 M parameters (vocabulary ~630), 0.9 M training tokens, ~2–3 min on 2 cores. Quick (CI):
 * ~0.15 M parameters, 0.4 M tokens, ~15 s. Head counts are whole GQA groups (4 query heads over 2 KV heads)
 * so elastic attention heads have something to search over; intermediate sizes are multiples of 8 at every
 * MLP-width fraction of the LoNAS space (1, 0.875, …, 0.5). maxPositions 512 leaves room for eval's default
 * 256-token budget of number tasks after a ~90-token prompt (prompts are ≤ 110 tokens).
 */
export const PLANS: Record<'full' | 'quick', PretrainPlan> = {
  full: {
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 32,
    intermediateSize: 448,
    maxPositions: 512,
    steps: 440,
    batchSize: 16,
    seqLen: 128,
    lr: 3e-3,
    minLrFraction: 0.1,
    warmup: 30,
    weightDecay: 0.1,
    maxGradNorm: 1,
    corpusDocs: 12000,
  },
  quick: {
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    intermediateSize: 224,
    maxPositions: 512,
    steps: 200,
    batchSize: 16,
    seqLen: 128,
    lr: 4e-3,
    minLrFraction: 0.1,
    warmup: 10,
    weightDecay: 0.1,
    maxGradNorm: 1,
    corpusDocs: 3000,
  },
};

export function planConfig(p: PretrainPlan, vocabSize: number): LlamaConfig {
  return uniformConfig({
    vocabSize,
    hiddenSize: p.hiddenSize,
    headDim: p.headDim,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: p.numKvHeads,
    intermediateSize: p.intermediateSize,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: p.maxPositions,
    tieWordEmbeddings: true,
    attentionBias: false,
  });
}

/** Random initialisation (GPT-2 style): N(0, 0.02), residual output projections scaled by 1/√(2·layers), norms 1. */
export function initModel(config: LlamaConfig, seed: number): LlamaModel {
  const rng = new Rng(seed).derive('init');
  const std = 0.02,
    residualStd = std / Math.sqrt(2 * config.layers.length);
  const weights = new Map<string, Tensor>();
  for (const { name, shape, proj } of llamaWeightTable(config).all) {
    if (name.endsWith('norm.weight')) weights.set(name, new Tensor(new Float32Array(shape[0]).fill(1), shape));
    else weights.set(name, randomNormal(rng, shape, proj === 'o_proj' || proj === 'down_proj' ? residualStd : std));
  }
  return new LlamaModel(config, weights);
}

/** Documents → one token stream (BOS doc EOS BOS doc EOS …) cut into rows of seqLen (the tail is dropped). */
export function packCorpus(tok: LonasTokenizer, docs: string[], seqLen: number): Int32Array[] {
  const eos = tok.eosIds[0];
  if (tok.bosId === null || eos === undefined) throw new Error('demo pretraining: the tokenizer needs BOS and EOS tokens');
  const stream: number[] = [];
  for (const d of docs) {
    stream.push(tok.bosId);
    for (const id of tok.encode(d, { addBos: false, addEos: false })) stream.push(id);
    stream.push(eos);
  }
  const rows: Int32Array[] = [];
  for (let i = 0; i + seqLen <= stream.length; i += seqLen) rows.push(Int32Array.from(stream.slice(i, i + seqLen)));
  return rows;
}

export interface PretrainProgress {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export interface PretrainOptions {
  /** the model directory to write (or reuse) */
  outDir: string;
  seed?: number;
  /** CI plan: a smaller model and budget */
  quick?: boolean;
  /** pretraining documents (default: the suite's corpus for `seed`, plan.corpusDocs documents) */
  corpus?: string[];
  /** plan overrides (tests use a few steps) */
  plan?: Partial<PretrainPlan>;
  onProgress?: (p: PretrainProgress) => void;
}

/** Greedy completions of pretraining-style prompts, per kind: correct / total. */
export interface ProbeResult {
  /** every sum and difference: "7 + 5 =" → 12 */
  arith: { correct: number; total: number };
  /** "12 is an" → even, for 1..20 */
  parity: { correct: number; total: number };
  /** word problems in pretraining style: "Ella had 7 shells. She found 8 more shells. We compute" → 7 + 8 = 15 */
  story: { correct: number; total: number };
}

export interface PretrainMeta {
  format: number;
  settingsHash: string;
  seed: number;
  plan: PretrainPlan;
  parameters: number;
  corpus: { documents: number; tokens: number; rows: number; sha256: string };
  tokenizer: { vocabSize: number; sha256: string };
  steps: number;
  tokensSeen: number;
  /** mean loss of the last 10 steps */
  finalLoss: number;
  /** [step, loss] every step */
  lossCurve: [number, number][];
  seconds: number;
  /** greedy continuations of pretraining-style prompts */
  samples: { prompt: string; continuation: string }[];
  probe: ProbeResult;
  node: string;
}

export interface PretrainResult extends PretrainMeta {
  dir: string;
  cached: boolean;
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Pretrains (or reuses) the demo base model in `outDir`. */
export function pretrainBase(o: PretrainOptions): PretrainResult {
  const seed = o.seed ?? 0;
  const plan: PretrainPlan = { ...(o.quick ? PLANS.quick : PLANS.full), ...o.plan };
  const tokFiles = demoTokenizerFiles();
  const tokSha = sha256(tokFiles['tokenizer.json']);
  const docs = o.corpus ?? generateSuite(seed, { pretrainDocs: plan.corpusDocs, train: 0, val: 0, test: 0 }).pretrain;
  const corpusSha = sha256(JSON.stringify(docs));
  const settingsHash = sha256(JSON.stringify({ format: PRETRAIN_FORMAT, plan, seed, corpusSha, tokSha })).slice(0, 16);
  const dir = resolve(o.outDir);

  const cached = readCached(dir, settingsHash);
  if (cached) return { ...cached, dir, cached: true };
  const ours = new Set<string>([...TOKENIZER_FILES, CONFIG_FILE, SINGLE_FILE, PRETRAIN_META]);
  const foreign = existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((f) => !ours.has(f)) : [];
  if (foreign.length)
    throw new Error(
      `${dir}: exists and is not a demo base model directory (it holds ${foreign.slice(0, 3).join(', ')}); choose another directory`,
    );
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`${dir}: exists and is not a directory`);

  const started = performance.now();
  rmSync(join(dir, PRETRAIN_META), { force: true }); // from here on the directory is incomplete until the new one is written
  writeDemoTokenizer(dir, tokFiles);
  const tok = loadTokenizer(dir);
  const config = planConfig(plan, tok.vocabSize);
  const rows = packCorpus(tok, docs, plan.seqLen);
  if (rows.length < plan.batchSize)
    throw new Error(
      `demo pretraining: the corpus fills ${rows.length} rows of ${plan.seqLen} tokens, fewer than a batch of ${plan.batchSize}`,
    );
  const model = initModel(config, seed);
  const named = model.namedParameters();
  for (const t of named.values()) t.requiresGrad = true;
  const all = [...named.values()];
  const matrices = all.filter((t) => t.ndim === 2),
    vectors = all.filter((t) => t.ndim !== 2);
  const optMat = new AdamW(matrices, { lr: plan.lr, beta2: 0.95, weightDecay: plan.weightDecay });
  const optVec = new AdamW(vectors, { lr: plan.lr, beta2: 0.95, weightDecay: 0 });
  const parameters = all.reduce((s, t) => s + t.size, 0);

  const B = plan.batchSize,
    T = plan.seqLen;
  const orderRng = new Rng(seed).derive('pretrain-order');
  let order: number[] = [],
    cursor = 0;
  const ids = new Int32Array(B * T);
  const lossCurve: [number, number][] = [];
  const trainStart = performance.now();
  for (let step = 0; step < plan.steps; step++) {
    for (let b = 0; b < B; b++) {
      if (cursor >= order.length) {
        order = orderRng.shuffle(rows.map((_, i) => i));
        cursor = 0;
      }
      ids.set(rows[order[cursor++]], b * T);
    }
    optMat.zeroGrad();
    optVec.zeroGrad();
    const loss = causalLmLoss(model.forward(ids, B, T), ids);
    const value = loss.item();
    if (!Number.isFinite(value)) throw new Error(`demo pretraining diverged: loss ${value} at step ${step + 1}`);
    backward(loss);
    const f = cosineWithWarmup(step, plan.warmup, plan.steps);
    const lr = plan.lr * (step < plan.warmup ? f : plan.minLrFraction + (1 - plan.minLrFraction) * f);
    optMat.lr = optVec.lr = lr;
    clipGradNorm(all, plan.maxGradNorm);
    optMat.update();
    optVec.update();
    lossCurve.push([step + 1, value]);
    const elapsed = (performance.now() - trainStart) / 1000;
    o.onProgress?.({
      step: step + 1,
      totalSteps: plan.steps,
      loss: value,
      lr,
      tokensPerSecond: ((step + 1) * B * T) / Math.max(elapsed, 1e-9),
      elapsedSeconds: elapsed,
    });
  }
  optMat.zeroGrad();
  optVec.zeroGrad();
  for (const t of all) t.requiresGrad = false;

  const samples = sampleContinuations(model, tok);
  const probe = probeKnowledge(model, tok);
  const tail = lossCurve.slice(-10);
  const meta: PretrainMeta = {
    format: PRETRAIN_FORMAT,
    settingsHash,
    seed,
    plan,
    parameters,
    corpus: { documents: docs.length, tokens: rows.length * T, rows: rows.length, sha256: corpusSha },
    tokenizer: { vocabSize: tok.vocabSize, sha256: tokSha },
    steps: plan.steps,
    tokensSeen: plan.steps * B * T,
    finalLoss: tail.reduce((s, [, l]) => s + l, 0) / Math.max(1, tail.length),
    lossCurve: lossCurve.map(([s, l]) => [s, Math.round(l * 1e4) / 1e4]),
    seconds: 0,
    samples,
    probe,
    node: process.version,
  };
  saveModelDir(dir, model, { overwrite: true }); // keeps the tokenizer files written above
  meta.seconds = Math.round((performance.now() - started) / 100) / 10;
  writeJsonAtomic(join(dir, PRETRAIN_META), meta); // last: its presence marks a complete directory
  return { ...meta, dir, cached: false };
}

/** The metadata of a complete directory made with these settings, else null. */
function readCached(dir: string, settingsHash: string): PretrainMeta | null {
  const metaPath = join(dir, PRETRAIN_META);
  if (!existsSync(metaPath)) return null;
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
    if (!existsSync(join(dir, f))) return null;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as PretrainMeta;
    return meta.settingsHash === settingsHash && meta.format === PRETRAIN_FORMAT ? meta : null;
  } catch {
    return null;
  }
}

/** Greedy completions (stopping at EOS or `stop`), one batch per call. */
export function greedyComplete(model: LlamaModel, tok: LonasTokenizer, prompts: string[], maxNewTokens: number): string[] {
  const enc = prompts.map((p) => tok.encode(p, { addBos: true, addEos: false }));
  return noGrad(() => generate(model, enc, { maxNewTokens, strategy: { kind: 'greedy' }, eosIds: tok.eosIds })).map((ids) =>
    tok.decode(ids, { skipSpecialTokens: true }),
  );
}

const SAMPLE_PROMPTS = [
  'Tom had 6 apples. He found 3 more apples. How many apples does Tom have?',
  'There are 15 toys in a box. Mia takes 7 toys out of the box.',
  'Is 13 even or odd?',
  'Below is',
];

function sampleContinuations(model: LlamaModel, tok: LonasTokenizer): { prompt: string; continuation: string }[] {
  const outs = greedyComplete(model, tok, SAMPLE_PROMPTS, 32);
  return SAMPLE_PROMPTS.map((prompt, i) => ({ prompt, continuation: outs[i] }));
}

/**
 * What the base model knows, by greedy completion of pretraining-style prompts: every sum and difference
 * ("7 + 5 =" → 12), the parity of 1..20 ("12 is an" → even) and word problems, which need the numbers of
 * the story copied into the equation ("… She found 8 more shells. We compute" → "7 + 8 = 15").
 */
export function probeKnowledge(model: LlamaModel, tok: LonasTokenizer, batch = 64): ProbeResult {
  const items: { kind: keyof ProbeResult; prompt: string; gold: string; tokens: number }[] = [];
  for (const f of arithFacts()) items.push({ kind: 'arith', prompt: `${f.a} ${f.op} ${f.b} =`, gold: String(f.result), tokens: 2 });
  for (let n = 1; n <= 20; n++) items.push({ kind: 'parity', prompt: `${n} is an`, gold: n % 2 === 0 ? 'even' : 'odd', tokens: 2 });
  const rng = new Rng(7);
  const facts = arithFacts();
  for (let i = 0; i < 60; i++) {
    const f = facts[rng.int(facts.length)];
    const story = f.op === '+' ? `Ella had ${f.a} shells. She found ${f.b} more shells.` : `Tom had ${f.a} cards and used ${f.b} of them.`;
    items.push({ kind: 'story', prompt: `${story} We compute`, gold: `${f.a} ${f.op} ${f.b} = ${f.result}`, tokens: 10 });
  }
  const result = { arith: { correct: 0, total: 0 }, parity: { correct: 0, total: 0 }, story: { correct: 0, total: 0 } };
  for (let i = 0; i < items.length; i += batch) {
    const chunk = items.slice(i, i + batch);
    const outs = greedyComplete(
      model,
      tok,
      chunk.map((c) => c.prompt),
      Math.max(...chunk.map((c) => c.tokens)),
    );
    chunk.forEach((c, j) => {
      result[c.kind].total++;
      if (outs[j].trim().startsWith(c.gold) && !/^\d/.test(outs[j].trim().slice(c.gold.length))) result[c.kind].correct++;
    });
  }
  return result;
}
