/**
 * The Pareto-front chart of a search (pareto.svg): cost against accuracy (or loss) for every evaluated
 * configuration, the non-dominated front highlighted and joined, the chosen configuration marked, the named
 * candidates labelled. A Vega-Lite spec rendered to SVG by Vega in Node (no browser, no canvas, no network:
 * the data is inline; text widths are estimated).
 */
import type { TopLevelSpec } from 'vega-lite';
import { costDefinitionLabel } from './cost.ts';
import type { CostDefinition } from './cost.ts';

export interface ChartPoint {
  cost: number;
  score: number;
  front: boolean;
  chosen: boolean;
  /** shown beside the point (named candidates) */
  label?: string;
}

export interface ChartOptions {
  costName: 'macs' | 'params' | 'latency';
  /** what the params and MACs count (the axis label says it) */
  costDefinition: CostDefinition;
  /** 'loss' (lower is better) or 'accuracy' (higher is better) */
  scoreName: 'loss' | 'accuracy';
  title: string;
  /** the acceptance line (ref − delta, or ref + delta for a loss), drawn dashed */
  threshold?: number;
}

/** The cost axis title: exactly what is plotted, e.g. "MACs (merged, 1×64 forward)". */
export function costAxisLabel(name: ChartOptions['costName'], d: CostDefinition): string {
  if (name === 'latency') return 'latency (ms, merged)';
  return name === 'macs' ? `MACs (${costDefinitionLabel(d)})` : `parameters (${d.merged ? 'merged' : 'adapter unmerged'})`;
}

/** Large counts in M or G so that the axis stays readable. */
function costScale(name: ChartOptions['costName'], max: number): { div: number; unit: string } {
  if (name === 'latency') return { div: 1, unit: '' };
  if (max >= 1e9) return { div: 1e9, unit: ' (G)' };
  if (max >= 1e6) return { div: 1e6, unit: ' (M)' };
  if (max >= 1e3) return { div: 1e3, unit: ' (K)' };
  return { div: 1, unit: '' };
}

export function paretoSpec(points: ChartPoint[], o: ChartOptions): TopLevelSpec {
  const { div, unit } = costScale(o.costName, Math.max(...points.map((p) => p.cost), 0));
  const values = points.map((p) => ({
    cost: p.cost / div,
    score: p.score,
    label: p.label ?? '',
    kind: p.chosen ? 'chosen' : p.front ? 'Pareto front' : 'evaluated',
  }));
  const x = {
    field: 'cost',
    type: 'quantitative',
    title: `${costAxisLabel(o.costName, o.costDefinition)}${unit}`,
    scale: { zero: false },
  } as const;
  const y = {
    field: 'score',
    type: 'quantitative',
    title: o.scoreName === 'loss' ? 'validation loss (lower is better)' : 'accuracy (higher is better)',
    scale: { zero: false },
  } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: o.title,
    width: 560,
    height: 360,
    background: 'white',
    data: { values },
    layer: [
      {
        transform: [{ filter: "datum.kind !== 'evaluated'" }],
        mark: { type: 'line', color: '#4c78a8', interpolate: 'step-after', strokeWidth: 1.5, opacity: 0.7 },
        encoding: { x, y, order: { field: 'cost', type: 'quantitative' } },
      },
      {
        mark: { type: 'point', filled: true, size: 50 },
        encoding: {
          x,
          y,
          color: {
            field: 'kind',
            type: 'nominal',
            title: null,
            scale: { domain: ['evaluated', 'Pareto front', 'chosen'], range: ['#b0b0b0', '#4c78a8', '#e45756'] },
          },
          shape: {
            field: 'kind',
            type: 'nominal',
            title: null,
            scale: { domain: ['evaluated', 'Pareto front', 'chosen'], range: ['circle', 'circle', 'diamond'] },
          },
          size: { condition: { test: "datum.kind === 'chosen'", value: 160 }, value: 50 },
          opacity: { condition: { test: "datum.kind === 'evaluated'", value: 0.6 }, value: 1 },
        },
      },
      ...(o.threshold !== undefined
        ? [
            {
              data: { values: [{}] }, // one mark, not one per data row
              mark: { type: 'rule', color: '#e45756', strokeDash: [4, 4], opacity: 0.8 },
              encoding: { y: { datum: o.threshold, type: 'quantitative' } },
            },
            {
              data: { values: [{}] },
              mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -5, fontSize: 10, color: '#e45756' },
              encoding: {
                x: { value: 560 },
                y: { datum: o.threshold, type: 'quantitative' },
                text: { value: o.scoreName === 'loss' ? 'ref + delta' : 'ref − delta' },
              },
            },
          ]
        : []),
      {
        transform: [{ filter: "datum.label !== ''" }],
        mark: { type: 'text', align: 'left', dx: 7, dy: -7, fontSize: 10, color: '#333' },
        encoding: { x, y, text: { field: 'label', type: 'nominal' } },
      },
    ],
  } as TopLevelSpec;
}

/** Renders the chart to an SVG string. */
export async function paretoSvg(points: ChartPoint[], o: ChartOptions): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]); // loaded only when a chart is drawn
  const view = new vega.View(vega.parse(vl.compile(paretoSpec(points, o)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
