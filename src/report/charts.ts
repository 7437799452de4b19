/**
 * The report's charts as Vega-Lite specs, rendered to SVG strings by Vega in Node (renderer 'none' +
 * view.toSVG(): no browser, no canvas, no network; the data is inline and text widths are estimated).
 * Vega escapes text and attribute values in its SVG output, so labels taken from the summary are safe to inline.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Curve, RunSummary } from './summary.ts';
import { costAxisLabel } from '../nas/chart.ts';
import type { CostDefinition } from '../nas/cost.ts';

type Pareto = NonNullable<RunSummary['pareto']>;

const GREY = '#b0b0b0';
const FRONT = '#4c78a8';
const CHOSEN = '#e45756';

/** Large counts in K/M/G so that the cost axis stays readable. */
function costScale(name: Pareto['costName'], max: number): { div: number; unit: string } {
  if (name === 'latency') return { div: 1, unit: '' };
  if (max >= 1e9) return { div: 1e9, unit: ' (G)' };
  if (max >= 1e6) return { div: 1e6, unit: ' (M)' };
  if (max >= 1e3) return { div: 1e3, unit: ' (K)' };
  return { div: 1, unit: '' };
}

/** Exactly what the x axis plots, e.g. "MACs (merged, 1×64 forward) (M)". */
export function costAxisTitle(p: Pareto, cost: CostDefinition): string {
  const { unit } = costScale(p.costName, Math.max(0, ...p.points.map((q) => q.cost)));
  return `${costAxisLabel(p.costName, cost)}${unit}`;
}

export function scoreAxisTitle(p: Pareto): string {
  return p.scoreName === 'loss' ? 'validation loss (lower is better)' : 'accuracy (higher is better)';
}

/**
 * Every evaluated configuration in grey, the non-dominated front in blue joined as a staircase (the best score
 * reachable at each cost), the chosen configuration as a red diamond with its label; named points labelled.
 */
export function paretoChartSpec(p: Pareto, cost: CostDefinition): TopLevelSpec {
  const { div } = costScale(p.costName, Math.max(0, ...p.points.map((q) => q.cost)));
  const values = p.points.map((q) => ({
    cost: q.cost / div,
    score: q.score,
    label: q.chosen ? (q.label ? `chosen: ${q.label}` : 'chosen') : (q.label ?? ''),
    kind: q.chosen ? 'chosen' : q.onFront ? 'Pareto front' : 'evaluated',
  }));
  const x = { field: 'cost', type: 'quantitative', title: costAxisTitle(p, cost), scale: { zero: false, nice: true } } as const;
  const y = {
    field: 'score',
    type: 'quantitative',
    title: scoreAxisTitle(p),
    scale: { zero: false, nice: true },
    ...(p.scoreName === 'accuracy' ? { axis: { format: '.0%' } } : {}),
  } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width: 600,
    height: 340,
    background: 'white',
    config: { font: 'Helvetica, Arial, sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 } },
    data: { values },
    layer: [
      {
        // the front (the chosen point is on it) as a staircase in cost order
        transform: [{ filter: "datum.kind !== 'evaluated'" }],
        mark: { type: 'line', color: FRONT, interpolate: 'step-after', strokeWidth: 1.5, opacity: 0.8 },
        encoding: { x, y, order: { field: 'cost', type: 'quantitative' } },
      },
      {
        mark: { type: 'point', filled: true },
        encoding: {
          x,
          y,
          color: {
            field: 'kind',
            type: 'nominal',
            title: null,
            scale: { domain: ['evaluated', 'Pareto front', 'chosen'], range: [GREY, FRONT, CHOSEN] },
          },
          shape: {
            field: 'kind',
            type: 'nominal',
            title: null,
            scale: { domain: ['evaluated', 'Pareto front', 'chosen'], range: ['circle', 'circle', 'diamond'] },
          },
          size: { condition: { test: "datum.kind === 'chosen'", value: 170 }, value: 45 },
          opacity: { condition: { test: "datum.kind === 'evaluated'", value: 0.7 }, value: 1 },
        },
      },
      {
        transform: [{ filter: "datum.label !== '' && datum.kind !== 'chosen'" }],
        mark: { type: 'text', align: 'left', dx: 8, dy: -8, fontSize: 11, color: '#333' },
        encoding: { x, y, text: { field: 'label', type: 'nominal' } },
      },
      {
        transform: [{ filter: "datum.kind === 'chosen'" }],
        mark: { type: 'text', align: 'left', dx: 10, dy: -10, fontSize: 12, fontWeight: 'bold', color: CHOSEN },
        encoding: { x, y, text: { field: 'label', type: 'nominal' } },
      },
    ],
  } as TopLevelSpec;
}

/** At most `max` points: the mean step and loss of consecutive equal-size buckets. */
export function downsample(points: { step: number; loss: number }[], max: number): { step: number; loss: number }[] {
  if (points.length <= max) return points;
  const out: { step: number; loss: number }[] = [];
  for (let b = 0; b < max; b++) {
    const lo = Math.floor((b * points.length) / max);
    const hi = Math.floor(((b + 1) * points.length) / max);
    let s = 0,
      l = 0;
    for (let i = lo; i < hi; i++) {
      s += points[i].step;
      l += points[i].loss;
    }
    out.push({ step: s / (hi - lo), loss: l / (hi - lo) });
  }
  return out;
}

/** Curves whose step ranges differ by more than this factor are drawn in separate panels. */
const SHARED_AXIS_RATIO = 4;
export const MAX_CURVE_POINTS = 300;

/** True when the curves are drawn in one panel per curve (their step ranges are too different to share an axis). */
export function curvesFaceted(curves: Curve[]): boolean {
  const spans = curves.map((c) => Math.max(1, ...c.train.map((p) => p.step), ...(c.val ?? []).map((p) => p.step)));
  return curves.length > 1 && Math.max(...spans) / Math.min(...spans) > SHARED_AXIS_RATIO;
}

/** Training loss: one solid line per curve, validation losses as dashed lines with points, in the curve's colour. */
export function curvesChartSpec(curves: Curve[]): TopLevelSpec {
  const values = curves.flatMap((c) => [
    ...downsample(
      c.train.filter((p) => Number.isFinite(p.loss)),
      MAX_CURVE_POINTS,
    ).map((p) => ({ curve: c.name, split: 'train', step: p.step, loss: p.loss })),
    ...(c.val ?? [])
      .filter((p) => Number.isFinite(p.loss))
      .map((p) => ({ curve: c.name, split: 'validation', step: p.step, loss: p.loss })),
  ]);
  const names = curves.map((c) => c.name);
  const x = { field: 'step', type: 'quantitative', title: 'step', scale: { zero: false, nice: true } } as const;
  const y = { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false, nice: true } } as const;
  const color = { field: 'curve', type: 'nominal', title: null, scale: { domain: names, scheme: 'tableau10' } } as const;
  const hasVal = curves.some((c) => (c.val ?? []).length > 0);
  const layer = [
    {
      mark: { type: 'line', strokeWidth: 1.6, interpolate: 'linear' },
      encoding: {
        x,
        y,
        color,
        detail: { field: 'split', type: 'nominal' },
        strokeDash: {
          field: 'split',
          type: 'nominal',
          title: null,
          scale: {
            domain: ['train', 'validation'],
            range: [
              [1, 0],
              [5, 3],
            ],
          },
          ...(hasVal ? {} : { legend: null }),
        },
        order: { field: 'step', type: 'quantitative' },
      },
    },
    ...(hasVal
      ? [
          {
            transform: [{ filter: "datum.split === 'validation'" }],
            mark: { type: 'point', filled: true, size: 55, stroke: 'white', strokeWidth: 1, opacity: 1 },
            encoding: { x, y, color },
          },
        ]
      : []),
  ];
  const config = {
    font: 'Helvetica, Arial, sans-serif',
    axis: { labelFontSize: 11, titleFontSize: 12 },
    legend: { labelFontSize: 11, labelLimit: 260 },
  };
  if (curvesFaceted(curves)) {
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      background: 'white',
      config,
      data: { values },
      facet: { field: 'curve', type: 'nominal', title: null, sort: names, header: { labelFontSize: 12, labelFontWeight: 'bold' } },
      columns: 2,
      spec: { width: 330, height: 210, layer },
      resolve: { scale: { x: 'independent', y: 'independent' } },
    } as TopLevelSpec;
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width: 600,
    height: 300,
    background: 'white',
    config,
    data: { values },
    layer,
  } as TopLevelSpec;
}

let chartCounter = 0;

/**
 * Renders a Vega-Lite spec to an SVG string for inlining in HTML: the SVG's ids (clip paths, gradients) get a
 * per-chart prefix so that several charts in one page cannot collide.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix = `c${++chartCounter}`): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return scopeSvgIds(svg, idPrefix);
  } finally {
    view.finalize();
  }
}

export function scopeSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}-${id}"`);
}
