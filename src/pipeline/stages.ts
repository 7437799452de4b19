/**
 * The stages of a recipe, each one `lonas` command whose outputs land under the run directory:
 *   sparsify → quantize → baseline → finetune → search → extract → eval → bench → report
 * (stages a recipe does not need are left out). Every stage is a separate, tested CLI command, so a
 * pipeline run is exactly what a user could type by hand.
 */
import { join } from 'node:path';
import type { Recipe } from './recipe.ts';

export interface Stage {
  name: string;
  /** `lonas` invocations (one per line of work), or an in-process step for `report` */
  commands: string[][];
  outputs: string[];
}

/** One evaluated configuration of the final table. */
export interface Row {
  id: string;
  name: string;
  /** model (+ adapter + subnet) arguments for eval/bench */
  modelArgs: string[];
  extracted: boolean;
}

export interface Layout {
  base: string;
  adapter: string;
  baselineAdapter: string;
  search: string;
  extracted: string;
  rows: Row[];
}

export function layout(r: Recipe): Layout {
  const base = r.quantize ? join(r.out, 'base-int4') : r.sparsify ? join(r.out, 'base-sparse') : r.model;
  const adapter = join(r.out, 'adapter'), baselineAdapter = join(r.out, 'baseline-adapter');
  const search = join(r.out, 'search'), extracted = join(r.out, 'extracted');
  const label = { lonas: 'LoNAS', shears: 'Shears', sqft: 'SQFT', lora: 'LoRA' }[r.method];
  const rows: Row[] = [];
  if (r.baseline) rows.push({ id: 'baseline', name: 'LoRA baseline', modelArgs: ['--model', base, '--adapter', baselineAdapter], extracted: false });
  if (r.method === 'lora') {
    rows.push({ id: 'lora', name: 'LoRA', modelArgs: ['--model', base, '--adapter', adapter], extracted: false });
  } else {
    rows.push({ id: 'maximal', name: `${label} maximal`, modelArgs: ['--model', base, '--adapter', adapter, '--subnet', 'maximal'], extracted: false });
    rows.push({ id: 'heuristic', name: `${label} heuristic`, modelArgs: ['--model', base, '--adapter', adapter, '--subnet', 'heuristic'], extracted: false });
    const unmerged = r.extract.merge ? [] : ['--adapter', join(extracted, 'adapter')];
    rows.push({ id: 'extracted', name: `${label} ${r.search ? 'searched' : 'heuristic'} (extracted)`, modelArgs: ['--model', extracted, ...unmerged], extracted: true });
  }
  return { base, adapter, baselineAdapter, search, extracted, rows };
}

const opt = (flag: string, v: number | string | undefined | null): string[] => (v === undefined || v === null ? [] : [flag, String(v)]);

function finetuneArgs(r: Recipe, base: string, out: string, space: string): string[] {
  const f = r.finetune;
  return ['finetune', '--model', base, '--data', r.data.train.join(','), '--out', out, '--space', space,
    '--rank', String(f.rank), '--alpha', String(f.alpha), '--dropout', String(f.quantizationAware ? 0 : f.dropout), '--targets', f.targets.join(','),
    ...(f.steps ? ['--steps', String(f.steps)] : ['--epochs', String(f.epochs)]), '--batch-size', String(f.batchSize), '--grad-accum', String(f.gradAccum),
    '--lr', String(f.lr), '--warmup', String(f.warmup), '--cutoff-len', String(f.cutoffLen), '--val-size', String(r.data.valSize), '--seed', String(r.seed),
    ...(f.trainOnInputs ? [] : ['--no-train-on-inputs']), ...(f.reorderChannels ? ['--reorder-channels', f.reorderChannels] : []), ...(f.sandwich && space !== 'none' ? ['--sandwich'] : []), ...(f.sparseAdapter ? ['--sparse-adapter'] : []), ...(f.quantizationAware ? ['--quantization-aware'] : []), ...f.extraArgs];
}

function evalTargets(r: Recipe): string[][] {
  const targets: string[][] = [];
  if (r.data.tasks.length) targets.push(['--tasks', r.data.tasks.join(','), ...opt('--data-dir', r.data.dataDir)]);
  for (const t of r.data.testFiles) targets.push(['--data', t.file, '--answer-type', t.answerType]);
  return targets;
}

export function stages(r: Recipe): Stage[] {
  const L = layout(r);
  const list: Stage[] = [];
  if (r.sparsify) {
    const s = r.sparsify, out = join(r.out, 'base-sparse');
    list.push({ name: 'sparsify', outputs: [out], commands: [['sparsify', '--model', r.model, '--method', s.method, '--sparsity', String(s.sparsity), ...opt('--nm', s.nm),
      ...opt('--calib', r.data.calib), '--nsamples', String(s.nsamples), ...opt('--seqlen', s.seqlen), '--seed', String(r.seed), '--out', out]] });
  }
  if (r.quantize) {
    const q = r.quantize, out = join(r.out, 'base-int4');
    list.push({ name: 'quantize', outputs: [out], commands: [['quantize', '--model', r.sparsify ? join(r.out, 'base-sparse') : r.model, '--bits', String(q.bits),
      '--group-size', String(q.groupSize), ...(q.actOrder ? ['--act-order'] : []), ...(q.lmHead ? ['--lm-head'] : []), '--calib', r.data.calib!, '--nsamples', String(q.nsamples), ...opt('--seqlen', q.seqlen), '--seed', String(r.seed), '--out', out]] });
  }
  if (r.baseline) list.push({ name: 'baseline', outputs: [L.baselineAdapter], commands: [finetuneArgs(r, L.base, L.baselineAdapter, 'none')] });
  list.push({ name: 'finetune', outputs: [L.adapter], commands: [finetuneArgs(r, L.base, L.adapter, r.method === 'lora' ? 'none' : r.finetune.space)] });
  if (r.method !== 'lora') {
    if (r.search) {
      const s = r.search;
      const val = r.data.val ? ['--val', r.data.val] : ['--val-size', String(r.data.valSize)];
      list.push({ name: 'search', outputs: [L.search], commands: [['search', '--model', L.base, '--adapter', L.adapter, ...val, '--out', L.search,
        '--evals', String(s.evals), '--population', String(s.population), '--objective', s.objective, '--mode', s.mode, ...opt('--limit', s.limit), ...opt('--delta', s.delta), '--seed', String(r.seed)]] });
    }
    list.push({ name: 'extract', outputs: [L.extracted], commands: [['extract', '--model', L.base, '--adapter', L.adapter, '--subnet', r.search ? join(L.search, 'best.json') : 'heuristic',
      ...(r.extract.merge ? ['--merge'] : []), '--out', L.extracted]] });
  }
  const e = r.eval;
  list.push({ name: 'eval', outputs: [join(r.out, 'eval')], commands: L.rows.flatMap((row) => evalTargets(r).map((t, k) => ['eval', ...row.modelArgs, ...t, '--mode', e.mode, '--beams', String(e.beams),
    ...opt('--max-new-tokens', e.maxNewTokens), ...opt('--limit', e.limit), '--batch-size', String(e.batchSize), '--out', join(r.out, 'eval', `${row.id}.${k}.json`)])) });
  const b = r.bench;
  list.push({ name: 'bench', outputs: [join(r.out, 'bench')], commands: L.rows.map((row) => ['bench', ...row.modelArgs, '--prompt-len', String(b.promptLen), '--gen-len', String(b.genLen),
    '--repeats', String(b.repeats), '--json', '--out', join(r.out, 'bench', `${row.id}.json`)]) });
  list.push({ name: 'report', outputs: [join(r.out, 'report.html'), join(r.out, 'summary.json')], commands: [] });
  return list;
}
