/** Assembles summary.json (src/report/summary.ts) from the files the stages wrote — only measured numbers. */
import { cpus } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backendInfo } from '../kernels/index.ts';
import type { Curve, ParetoPoint, ResultRow, RunSummary, TaskScore } from '../report/summary.ts';
import type { Recipe } from './recipe.ts';
import { readBenchRecord, readEvalSummary, readSearchResult } from '../io/artifacts.ts';
import type { StageRecord } from '../io/artifacts.ts';
import { readJsonFile } from '../io/files.ts';
import { costDefinitionOptions, layout } from './stages.ts';
import { costDefinitionLabel } from '../nas/cost.ts';
import type { CostDefinition } from '../nas/cost.ts';

function trainCurve(name: string, dir: string): Curve | null {
  const file = join(dir, 'train_log.jsonl');
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; step: number; loss?: number; val_loss?: number });
  return {
    name,
    train: lines.filter((l) => l.type === 'step').map((l) => ({ step: l.step, loss: l.loss! })),
    val: lines.filter((l) => l.type === 'eval').map((l) => ({ step: l.step, loss: l.val_loss! })),
  };
}

/** Reads the search's every-evaluation CSV into chart points (front and chosen marked). */
function paretoPoints(dir: string, cost: CostDefinition): RunSummary['pareto'] {
  const result = readSearchResult(dir);
  if (!result) return null;
  const { pareto, best } = result;
  const d = pareto.cost_definition;
  if (d.merged !== cost.merged || d.seq_len !== cost.seqLen)
    throw new Error(
      `${join(dir, 'pareto.json')}: the search counted cost ${costDefinitionLabel({ merged: d.merged, seqLen: d.seq_len })}, ` +
        `the run counts ${costDefinitionLabel(cost)}: run the search stage again (lonas run --from search)`,
    );
  const key = (c: Record<string, number>) =>
    JSON.stringify(
      Object.keys(c)
        .sort()
        .map((k) => [k, c[k]]),
    );
  const front = new Set(pareto.front.map((f) => key(f.config)));
  const [header, ...rows] = readFileSync(join(dir, 'search_progression.csv'), 'utf8').trim().split('\n');
  const cols = header.split(',');
  const costCol = cols.indexOf(pareto.cost === 'latency' ? 'latency_ms' : pareto.cost),
    scoreCol = cols.indexOf(pareto.score);
  const seen = new Set<string>();
  const points: ParetoPoint[] = [];
  for (const line of rows) {
    // the config column is a quoted JSON object containing commas
    const m = /^(\d+),([^,]*),"((?:[^"]|"")*)",(.*)$/.exec(line);
    if (!m) continue;
    const config = JSON.parse(m[3].replace(/""/g, '"')) as Record<string, number>;
    const rest = [m[1], m[2], '', ...m[4].split(',')];
    const k = key(config);
    if (seen.has(k)) continue;
    seen.add(k);
    const source = m[2];
    points.push({
      cost: Number(rest[costCol]),
      score: Number(rest[scoreCol]),
      onFront: front.has(k),
      chosen: k === key(best.config),
      ...(['maximal', 'heuristic', 'minimal'].includes(source) ? { label: source } : {}),
    });
  }
  return { costName: pareto.cost, scoreName: pareto.score, points };
}

export function buildSummary(r: Recipe, records: StageRecord[]): RunSummary {
  const L = layout(r);
  const { merged, costSeqLen } = costDefinitionOptions(r);
  const cost: CostDefinition = { merged, seqLen: costSeqLen };
  const info = backendInfo();
  let reference: RunSummary['reference'] = null;
  const rows: ResultRow[] = [];
  const taskNames = new Set<string>();
  for (const row of L.rows) {
    const perTask: Record<string, TaskScore> = {};
    let mode: ResultRow['mode'] = r.eval.mode;
    for (let k = 0; existsSync(join(r.out, 'eval', `${row.id}.${k}.json`)); k++) {
      const e = readEvalSummary(join(r.out, 'eval', `${row.id}.${k}.json`));
      mode = e.mode;
      for (const t of e.tasks) {
        perTask[t.task] = { accuracy: t.accuracy, n: t.count, ci: t.ci95 };
        taskNames.add(t.task);
      }
    }
    const benchFile = join(r.out, 'bench', `${row.id}.json`);
    const bench = existsSync(benchFile) ? readBenchRecord(benchFile) : null;
    if (bench && !row.extracted && !reference)
      reference = {
        name: 'the base model',
        params: bench.base.params.total,
        nonZeroParams: bench.base.params.nonZero,
        macs: bench.base.macs,
      };
    const accs = Object.values(perTask).map((t) => t.accuracy);
    rows.push({
      name: row.name,
      subnet: bench?.config ?? null,
      perTask,
      average: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : NaN,
      mode,
      params: bench?.params.total ?? NaN,
      nonZeroParams: bench?.params.nonZero ?? NaN,
      macs: bench?.macs ?? NaN,
      latency: bench
        ? {
            prefillMs: bench.prefillMs,
            decodeMsPerToken: bench.decodeMsPerToken,
            promptLen: bench.promptLen,
            genLen: bench.genLen,
            overheadShare: bench.overheadShare,
          }
        : undefined,
      speedup: bench?.speedup ?? null,
      extracted: row.extracted,
    });
  }
  const baseRow = rows[0];
  const curves = [
    trainCurve(r.method === 'lora' ? 'LoRA' : `${r.method} super-network`, L.adapter),
    r.baseline ? trainCurve('LoRA baseline', L.baselineAdapter) : null,
  ].filter((c): c is Curve => c !== null);
  const pkg = readJsonFile(new URL('../../package.json', import.meta.url).pathname, "lonas's package.json") as { version: string };
  return {
    title: `${r.name}: ${r.method === 'lora' ? 'LoRA' : r.method.toUpperCase()} on ${r.model.split('/').filter(Boolean).slice(-2).join('/')}`,
    method: r.method,
    createdAt: new Date().toISOString(),
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      node: process.version,
      kernels: info.backend,
      blasCore: info.coreType,
      threads: info.threads,
    },
    versions: { lonas: pkg.version, node: process.version, ...(info.blasConfig ? { openblas: info.blasConfig } : {}) },
    recipe: r,
    seeds: { recipe: r.seed },
    tasks: [...taskNames],
    cost,
    reference,
    speedupBaseline: baseRow.name,
    rows,
    pareto: r.search ? paretoPoints(L.search, cost) : null,
    curves,
    stages: records.map((s) => ({ name: s.name, seconds: s.seconds, outputs: s.outputs })),
    notes: [
      `Accuracies: ${r.eval.mode} mode${r.eval.mode === 'generate' ? (r.eval.beams > 1 ? `, beam search ${r.eval.beams}` : ', greedy decoding (the papers use beam 4)') : ' (most likely option)'}${r.eval.limit ? `, first ${r.eval.limit} examples per task` : ''}.`,
      `Parameters and MACs (${costDefinitionLabel(cost)}) of each configuration as the run ships it; reductions against the base model. ` +
        `Latency: median and min–max of ${r.bench.repeats} runs (prefill ${r.bench.promptLen} tokens, decode ${r.bench.genLen}) on this machine, ` +
        `each row timed interleaved with "${baseRow.name}" (A B A B …); speed-ups are the per-run ratios, "≈ 1× (within noise)" when their range includes 1 ` +
        `(two equally fast configurations leave 1 out of the range of ${r.bench.repeats} runs with chance ${(100 * 2 ** (1 - r.bench.repeats)).toPrecision(2)}%).`,
    ],
  };
}
