/** A realistic RunSummary built by hand (a LoNAS run: LoRA baseline, maximal, heuristic and searched rows). */
import type { ParetoPoint, RunSummary, TaskScore } from '../../src/report/summary.ts';
import { wilson } from '../../src/eval/stats.ts';

function score(correct: number, n: number): TaskScore {
  return { accuracy: correct / n, n, ci: wilson(correct, n) };
}

function row(name: string, scores: Record<string, TaskScore>) {
  const accs = Object.values(scores).map((s) => s.accuracy);
  return { perTask: scores, average: accs.reduce((a, b) => a + b, 0) / accs.length, name };
}

/** 20 points: 14 dominated, 6 on the front (one chosen); deterministic. */
function paretoPoints(): ParetoPoint[] {
  const pts: ParetoPoint[] = [];
  const front = [
    { cost: 1.62e9, score: 0.412 },
    { cost: 1.9e9, score: 0.468 },
    { cost: 2.25e9, score: 0.503 },
    { cost: 2.6e9, score: 0.521 },
    { cost: 3.1e9, score: 0.529 },
    { cost: 3.64e9, score: 0.534 },
  ];
  front.forEach((f, i) =>
    pts.push({
      ...f,
      onFront: true,
      chosen: i === 3,
      ...(i === 5 ? { label: 'maximal' } : i === 3 ? { label: 'searched' } : {}),
    }),
  );
  for (let i = 0; i < 14; i++) {
    const cost = 1.7e9 + ((i * 0.37) % 1) * 1.9e9;
    const best = front.filter((f) => f.cost <= cost).reduce((a, f) => Math.max(a, f.score), 0.38);
    pts.push({
      cost,
      score: best - 0.01 - ((i * 0.61) % 1) * 0.06,
      onFront: false,
      chosen: false,
      ...(i === 4 ? { label: 'heuristic' } : {}),
    });
  }
  return pts;
}

function curve(name: string, steps: number, start: number, end: number, withVal: boolean, seed: number) {
  let state = seed;
  const noise = () => {
    state = (state * 16807) % 2147483647; // Park–Miller
    return (state / 2147483647 - 0.5) * 0.12;
  };
  const train = Array.from({ length: steps }, (_, i) => ({
    step: i + 1,
    loss: end + (start - end) * Math.exp(-i / (steps / 4)) + noise(),
  }));
  const val = withVal
    ? Array.from({ length: 5 }, (_, k) => {
        const step = ((k + 1) * steps) / 5;
        return { step, loss: end + 0.05 + (start - end) * Math.exp(-step / (steps / 4)) };
      })
    : undefined;
  return { name, train, ...(val ? { val } : {}) };
}

export function makeSummary(): RunSummary {
  const tasks = ['arith', 'mc-reasoning', 'boolq-lite'];
  const base = row('LoRA baseline', { arith: score(118, 250), 'mc-reasoning': score(161, 250), 'boolq-lite': score(172, 250) });
  const max = row('LoNAS maximal', { arith: score(121, 250), 'mc-reasoning': score(158, 250), 'boolq-lite': score(170, 250) });
  const heur = row('LoNAS heuristic', { arith: score(104, 250), 'mc-reasoning': score(150, 250), 'boolq-lite': score(166, 250) });
  const srch = row('LoNAS searched', { arith: score(115, 250), 'mc-reasoning': score(157, 250), 'boolq-lite': score(170, 250) });
  const P = 4_718_592; // a few-million-parameter Llama
  const M = 1_207_959_552; // 1×256 MACs
  const sp = (median: number, r = 0.08) => ({ min: median * (1 - r), median, max: median * (1 + r) });
  const lat = (prefillMs: number, decodeMsPerToken: number) => ({
    prefillMs: sp(prefillMs),
    decodeMsPerToken: sp(decodeMsPerToken),
    promptLen: 128,
    genLen: 32,
    overheadShare: 0.1,
  });
  return {
    title: 'LoNAS demo: built-in task suite on a 4.7M-parameter Llama',
    method: 'lonas',
    createdAt: '2025-03-14T09:26:53.000Z',
    machine: { cpu: 'AMD EPYC 7B13', cores: 2, node: 'v20.18.0', kernels: 'native', blasCore: 'openblas-haswell', threads: 2 },
    versions: { lonas: '0.1.0', node: 'v20.18.0', vega: '6.4.0', 'vega-lite': '6.4.3' },
    recipe: {
      method: 'lonas',
      model: 'builtin:demo-llama',
      data: 'builtin:demo-tasks',
      finetune: { rank: 32, ranks: [32, 24, 16], lr: 3e-4, epochs: 3, cutoff: 256, batchSize: 16 },
      search: { objective: 'macs', evaluations: 200, population: 20, delta: 0.02 },
      eval: { mode: 'generate', split: 'test' },
    },
    seeds: { data: 42, pretrain: 1, finetune: 7, search: 3 },
    tasks,
    cost: { merged: true, seqLen: 256 },
    reference: { name: 'the base model', params: P, nonZeroParams: P, macs: M },
    speedupBaseline: 'LoRA baseline',
    rows: [
      { ...base, mode: 'generate', params: P, nonZeroParams: P, macs: M, latency: lat(41.3, 6.02), speedup: null },
      {
        ...max,
        mode: 'generate',
        params: P,
        nonZeroParams: P,
        macs: M,
        latency: lat(41.9, 6.1),
        speedup: { prefill: sp(0.99, 0.2), decode: sp(0.99, 0.2) },
        subnet: { 'layers.0.mlp_width': 1024, 'layers.0.rank': 32 },
      },
      {
        ...heur,
        mode: 'generate',
        params: 3_932_160,
        nonZeroParams: 3_932_160,
        macs: 1_006_632_960,
        latency: lat(35.2, 5.3),
        speedup: { prefill: sp(1.17), decode: sp(1.14) },
        subnet: { 'layers.0.mlp_width': 768, 'layers.0.rank': 24 },
      },
      {
        ...srch,
        mode: 'generate',
        params: 3_727_360,
        nonZeroParams: 3_727_360,
        macs: 954_204_160,
        latency: lat(32.3, 4.9),
        speedup: { prefill: sp(1.28), decode: sp(1.23) },
        extracted: true,
        subnet: { 'layers.0.mlp_width': 640, 'layers.0.rank': 16 },
      },
    ],
    pareto: { costName: 'macs', scoreName: 'accuracy', points: paretoPoints() },
    curves: [curve('LoRA baseline', 240, 2.9, 1.15, true, 1), curve('LoNAS super-network', 240, 2.95, 1.3, true, 2)],
    stages: [
      { name: 'pretrain', seconds: 0.2, outputs: ['cache/base (cached)'] },
      { name: 'finetune', seconds: 143.7, outputs: ['lora/adapter', 'lonas/adapter'] },
      { name: 'search', seconds: 96.4, outputs: ['search/pareto.svg', 'search/best.json'] },
      { name: 'extract', seconds: 2.1, outputs: ['extracted/'] },
      { name: 'eval', seconds: 61.0, outputs: ['eval/'] },
      { name: 'bench', seconds: 18.5, outputs: ['bench.json'] },
      { name: 'report', seconds: 0.9, outputs: ['report.html', 'summary.json'] },
    ],
    notes: [
      'The pretrained base came from the cache (pretraining skipped).',
      'Accuracies on the held-out test split (250 items per task).',
    ],
  };
}
