/**
 * report.html: one self-contained page rendered from a RunSummary (summary.json). Inline CSS, charts as inline SVG
 * rendered in Node (Vega-Lite → Vega → view.toSVG()), no scripts and no external resources (a Content-Security-Policy
 * forbids both). Every piece of text from the summary is HTML-escaped.
 *
 * Sections, each with a stable id: #header (with the generated #summary-sentence), #results, #pareto, #training,
 * #settings.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/files.ts';
import { costAxisTitle, curvesChartSpec, curvesFaceted, MAX_CURVE_POINTS, paretoChartSpec, renderSvg, scoreAxisTitle } from './charts.ts';
import { dateUtc, duration, esc, exact, human, ms, pct, speedupText, times } from './format.ts';
import { OVERHEAD_DOMINATES, costDefinitionLabel, withinNoise } from '../nas/cost.ts';
import type { Spread } from '../nas/cost.ts';
import type { ResultRow, RunSummary } from './summary.ts';

export const METHOD_NAMES: Record<RunSummary['method'], string> = {
  lonas: 'LoNAS',
  shears: 'Shears',
  sqft: 'SQFT',
  lora: 'LoRA (baseline)',
};

/**
 * The two rows the summary sentence compares: the speed-up baseline (the row named `speedupBaseline`, else the
 * first) and the headline row (the last extracted row, else the last "searched"/"chosen" row, else the last
 * other row). `chosen` is undefined when the run has a single row.
 */
export function headlineRows(s: RunSummary): { baseline?: ResultRow; chosen?: ResultRow } {
  const baseline = s.rows.find((r) => r.name === s.speedupBaseline) ?? s.rows[0];
  const others = s.rows.filter((r) => r !== baseline);
  const chosen = others.filter((r) => r.extracted).at(-1) ?? others.filter((r) => /search|chosen/i.test(r.name)).at(-1) ?? others.at(-1);
  return { baseline, chosen };
}

function relCount(chosen: number, base: number, noun: string): string {
  if (!(base > 0)) return '';
  const r = Math.round((1 - chosen / base) * 100);
  return r > 0 ? `${r}% fewer ${noun}` : r < 0 ? `${-r}% more ${noun}` : `the same number of ${noun}`;
}

/** "prefill 0.91–1.12× over interleaved runs" */
const rangeText = (sp: Spread, what: string) => `${what} ${sp.min.toFixed(2)}–${sp.max.toFixed(2)}× over interleaved runs`;

/** The note of a row whose timings per-call overhead dominates (src/nas/cost.ts OVERHEAD_DOMINATES), or ''. */
export function overheadNote(r: ResultRow): string {
  const f = r.latency?.overheadShare;
  return f !== undefined && f > OVERHEAD_DOMINATES
    ? `At this model size per-call overhead dominates the timings (${Math.round(100 * f)}% of a decode step of ${r.name} is not explained by reading its weights), so its speed does not follow its parameters or MACs.`
    : '';
}

/**
 * A plain-language sentence computed from the rows, e.g. "LoNAS searched (extracted) keeps 98.7% of the average
 * accuracy of LoRA baseline (44.1% vs 44.7%) with 21% fewer parameters and 20% fewer MACs than the base model and
 * runs 1.28× faster than LoRA baseline (prefill 1.10–1.40× over interleaved runs)." Sizes are compared with the
 * base model (`reference`), speed with the speed-up baseline; a speed-up whose range includes 1 is "the same speed
 * within noise". Plain text (not escaped): escape it for HTML.
 */
export function summarySentence(s: RunSummary): string {
  const { baseline: b, chosen: c } = headlineRows(s);
  if (!b) return 'No results were recorded in this run.';
  const k = Object.keys(b.perTask).length || s.tasks.length;
  if (!c) {
    return (
      `${b.name} reaches an average accuracy of ${pct(b.average)} over ${k} task${k === 1 ? '' : 's'} ` +
      `with ${human(b.params)} parameters and ${human(b.macs)} MACs per forward pass (${costDefinitionLabel(s.cost)}).`
    );
  }
  let acc: string;
  const cmp = `(${pct(c.average)} vs ${pct(b.average)})`;
  if (!(b.average > 0)) acc = `reaches an average accuracy of ${pct(c.average)} against ${pct(b.average)} for ${b.name}`;
  else if (pct(c.average) === pct(b.average)) acc = `matches the average accuracy of ${b.name} (${pct(c.average)})`;
  else if (c.average > b.average) acc = `exceeds the average accuracy of ${b.name} ${cmp}`;
  else acc = `keeps ${pct(c.average / b.average)} of the average accuracy of ${b.name} ${cmp}`;

  const ref = s.reference ?? { name: b.name, params: b.params, nonZeroParams: b.nonZeroParams, macs: b.macs };
  const params = relCount(c.params, ref.params, 'parameters');
  const nzRatio = relCount(c.nonZeroParams, ref.nonZeroParams, 'non-zero');
  const nz = nzRatio && params && nzRatio.split('%')[0] !== params.split('%')[0] ? ` (${nzRatio})` : '';
  const macs = relCount(c.macs, ref.macs, 'MACs');
  const size = params ? ` with ${params}${nz}${macs ? ` and ${macs}` : ''} than ${ref.name}` : '';

  let speed = '';
  const sp = c.speedup?.prefill;
  if (sp && Number.isFinite(sp.median) && sp.median > 0) {
    const than = s.speedupBaseline;
    speed = withinNoise(sp)
      ? `runs at the same speed as ${than} within noise (${rangeText(sp, 'prefill')})`
      : sp.min > 1
        ? `runs ${times(sp.median)} faster than ${than} (${rangeText(sp, 'prefill')})`
        : `runs ${times(1 / sp.median)} slower than ${than} (${rangeText(sp, 'prefill')})`;
  }
  const overhead = speed ? overheadNote(c) : '';
  return `${c.name} ${acc}${size}${speed ? ` and ${speed}` : ''}.${overhead ? ` ${overhead}` : ''}`;
}

const CSS = `
:root { --fg: #1d232a; --muted: #5b6570; --line: #dde1e6; --accent: #4c78a8; --chosen: #e45756; --bg-alt: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.meta { color: var(--muted); font-size: 13.5px; margin: 0; }
.meta span + span::before { content: " · "; }
.lead { font-size: 17px; margin: 16px 0 0; padding: 12px 16px; background: #eef3f9; border-left: 4px solid var(--accent); border-radius: 3px; }
nav { margin-top: 14px; font-size: 13.5px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 7px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--bg-alt); font-weight: 600; vertical-align: bottom; }
th.name, td.name, th.text, td.text { text-align: left; }
td.text { white-space: normal; }
table.results.compact { font-size: 12px; }
table.results.compact th, table.results.compact td { padding: 4px 5px; }
table.results tbody tr:hover { background: #fafbfc; }
table.results tr.chosen td { background: #fdf1f1; }
table.results tr.chosen td.name { box-shadow: inset 3px 0 0 var(--chosen); font-weight: 600; }
table.results td.avg, table.results th.avg { font-weight: 600; border-left: 1px solid var(--line); border-right: 1px solid var(--line); }
td[title] { cursor: help; }
.badge { display: inline-block; margin-left: 6px; padding: 0 6px; font-size: 11px; font-weight: 600; line-height: 17px; border-radius: 8px; color: #fff; background: var(--accent); vertical-align: 1px; }
.note, figcaption { color: var(--muted); font-size: 13px; }
figure { margin: 8px 0 0; }
figure svg { max-width: 100%; height: auto; display: block; }
pre { background: var(--bg-alt); border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px; font-size: 12.5px; line-height: 1.45; overflow-x: auto; max-height: 480px; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px 40px; align-items: flex-start; }
ul.notes { margin: 4px 0; padding-left: 20px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
`;

function cell(content: string, cls = '', title?: string): string {
  return `<td${cls ? ` class="${cls}"` : ''}${title !== undefined ? ` title="${esc(title)}"` : ''}>${content}</td>`;
}

const spreadMs = (x: Spread) => `median ${ms(x.median)}, min–max ${ms(x.min)}–${ms(x.max)}`;

function speedupCell(sp: Spread | undefined, cls: string): string {
  return cell(
    esc(speedupText(sp)),
    cls,
    sp ? `median ${times(sp.median)}, min–max ${times(sp.min)}–${times(sp.max)} (per-run ratios)` : undefined,
  );
}

function resultsSection(s: RunSummary, chosen: ResultRow | undefined): string {
  // the tasks of the summary first (in order), then any task a row has that the list misses
  const tasks = [...s.tasks];
  for (const r of s.rows) for (const t of Object.keys(r.perTask)) if (!tasks.includes(t)) tasks.push(t);
  const head = [
    '<th class="name">Configuration</th>',
    ...tasks.map((t) => `<th>${esc(t)}</th>`),
    '<th class="avg">Avg.</th>',
    '<th>Params</th>',
    '<th>Non-zero</th>',
    `<th title="${esc(`multiply-accumulates of one forward pass (${costDefinitionLabel(s.cost)})`)}">MACs</th>`,
    '<th title="measured prefill latency">Prefill</th>',
    '<th title="measured decode latency per token">Decode / tok</th>',
    `<th title="${esc(`measured against ${s.speedupBaseline}`)}">Speed-up<br>prefill</th>`,
    '<th>Speed-up<br>decode</th>',
    '<th class="text">Mode</th>',
  ].join('');
  const body = s.rows
    .map((r) => {
      const subnet =
        r.subnet && Object.keys(r.subnet).length
          ? `sub-network: ${Object.entries(r.subnet)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}`
          : undefined;
      const name = `${esc(r.name)}${r.extracted ? '<span class="badge" title="numbers measured on the physically extracted (smaller) model">extracted</span>' : ''}`;
      const perTask = tasks.map((t) => {
        const ts = r.perTask[t];
        return ts ? cell(pct(ts.accuracy), 'acc', `${t}: n = ${ts.n}, 95% CI ${pct(ts.ci[0])}–${pct(ts.ci[1])}`) : cell('—', 'acc');
      });
      const nzTitle =
        r.params > 0 ? `${exact(r.nonZeroParams)} (${pct(r.nonZeroParams / r.params)} of the parameters)` : exact(r.nonZeroParams);
      const lat = r.latency;
      const cls = [r === chosen ? 'chosen' : '', r.name === s.speedupBaseline ? 'baseline' : '', r.extracted ? 'extracted' : '']
        .filter(Boolean)
        .join(' ');
      return `<tr${cls ? ` class="${cls}"` : ''}>${[
        cell(name, 'name', subnet),
        ...perTask,
        cell(pct(r.average), 'avg'),
        cell(human(r.params), 'params', exact(r.params)),
        cell(human(r.nonZeroParams), 'nonzero', nzTitle),
        cell(human(r.macs), 'macs', exact(r.macs)),
        cell(ms(lat?.prefillMs.median), 'prefill', lat ? `prompt of ${lat.promptLen} tokens; ${spreadMs(lat.prefillMs)}` : undefined),
        cell(
          ms(lat?.decodeMsPerToken.median),
          'decode',
          lat ? `mean over ${lat.genLen} generated tokens; ${spreadMs(lat.decodeMsPerToken)}` : undefined,
        ),
        speedupCell(r.speedup?.prefill, 'speedup-prefill'),
        speedupCell(r.speedup?.decode, 'speedup-decode'),
        cell(esc(r.mode), 'text mode'),
      ].join('')}</tr>`;
    })
    .join('\n');
  const lat = s.rows.find((r) => r.latency)?.latency;
  const notes = [
    'Accuracy on the held-out test split, per task and averaged over tasks; hover a cell for the number of examples and the 95% Wilson interval. Mode: the evaluation protocol (generate = free generation with answer extraction, loglik = likelihood of each choice).',
    `Params, Non-zero and MACs count each configuration as the run ships it (${costDefinitionLabel(s.cost)}): all weights, those that are not zero (hover for exact counts), multiply-accumulates of one forward pass.` +
      (s.reference
        ? ` Reductions are against ${s.reference.name}: ${human(s.reference.params)} parameters (${human(s.reference.nonZeroParams)} non-zero), ${human(s.reference.macs)} MACs.`
        : ''),
    lat
      ? `Latency measured on this machine: prefill of a ${lat.promptLen}-token prompt, decode per token over ${lat.genLen} tokens, median of the runs (hover for min–max). Each row is timed interleaved with ${s.speedupBaseline} (A B A B …); a speed-up is the median of the per-run ratios with their min–max, and “≈ 1× (within noise)” when that range includes 1.`
      : `Speed-up against ${s.speedupBaseline}.`,
    ...s.rows.map(overheadNote).filter(Boolean),
    '“extracted”: numbers measured on the physically extracted (smaller) model. The highlighted row is the one the summary above refers to.',
  ];
  return `<section id="results">
<h2>Results</h2>
${
  s.rows.length
    ? `<div class="scroll"><table class="results${tasks.length > 5 ? ' compact' : ''}">
<thead><tr>${head}</tr></thead>
<tbody>
${body}
</tbody>
</table></div>`
    : '<p class="note">No result rows.</p>'
}
${notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
</section>`;
}

const COST_NAMES = { macs: 'MACs', params: 'parameters', latency: 'latency' } as const;

async function paretoSection(s: RunSummary): Promise<string> {
  const p = s.pareto;
  if (!p || p.points.length === 0) {
    return `<section id="pareto">
<h2>Search: Pareto front</h2>
<p class="note">No architecture search in this run (method ${esc(METHOD_NAMES[s.method])}): there is no Pareto front to show.</p>
</section>`;
  }
  const svg = await renderSvg(paretoChartSpec(p, s.cost), 'pareto');
  const front = p.points.filter((q) => q.onFront || q.chosen).length;
  const chosen = p.points.find((q) => q.chosen);
  const fmtScore = (x: number) => (p.scoreName === 'accuracy' ? pct(x) : x.toFixed(4));
  const fmtCost = (x: number) => (p.costName === 'latency' ? ms(x) : human(x));
  const caption =
    `${p.points.length} configurations evaluated (grey), ${front} on the Pareto front (blue, joined as a staircase: the best score reachable at each cost). ` +
    `x: ${costAxisTitle(p, s.cost)}; y: ${scoreAxisTitle(p)}.` +
    (chosen
      ? ` Chosen (red diamond): ${chosen.label ? `${chosen.label}, ` : ''}${COST_NAMES[p.costName]} ${fmtCost(chosen.cost)}, ${p.scoreName} ${fmtScore(chosen.score)}.`
      : ' No configuration was chosen.');
  return `<section id="pareto">
<h2>Search: Pareto front</h2>
<figure>
${svg}
<figcaption>${esc(caption)}</figcaption>
</figure>
</section>`;
}

async function trainingSection(s: RunSummary): Promise<string> {
  const curves = s.curves.filter((c) => c.train.length > 0 || (c.val ?? []).length > 0);
  if (curves.length === 0) {
    return `<section id="training">
<h2>Training loss</h2>
<p class="note">No training curves were recorded in this run.</p>
</section>`;
  }
  const svg = await renderSvg(curvesChartSpec(curves), 'training');
  const long = curves.filter((c) => c.train.length > MAX_CURVE_POINTS).map((c) => c.name);
  const hasVal = curves.some((c) => (c.val ?? []).length > 0);
  const caption =
    'Training loss per optimizer step (solid)' +
    (hasVal ? ', validation loss (dashed, with points)' : '') +
    '. ' +
    (curvesFaceted(curves) ? 'One panel per curve: their step ranges differ too much to share an axis. ' : '') +
    (long.length ? `Averaged over buckets of consecutive steps to ${MAX_CURVE_POINTS} points for: ${long.join(', ')}.` : '');
  return `<section id="training">
<h2>Training loss</h2>
<figure>
${svg}
<figcaption>${esc(caption.trim())}</figcaption>
</figure>
</section>`;
}

function kvTable(entries: [string, string][], cls: string): string {
  if (entries.length === 0) return '<p class="note">none</p>';
  return `<table class="${cls}"><tbody>${entries.map(([k, v]) => `<tr><th class="name">${esc(k)}</th><td class="text"><code>${esc(v)}</code></td></tr>`).join('')}</tbody></table>`;
}

function settingsSection(s: RunSummary): string {
  const m = s.machine;
  const machine: [string, string][] = [
    ['CPU', m.cpu],
    ['cores', String(m.cores)],
    ['Node', m.node],
    ['kernels', m.kernels],
    ...(m.blasCore ? [['BLAS core', m.blasCore] as [string, string]] : []),
    ...(m.threads !== undefined ? [['threads', String(m.threads)] as [string, string]] : []),
  ];
  const total = s.stages.reduce((a, st) => a + st.seconds, 0);
  const stages = s.stages.length
    ? `<table class="stages">
<thead><tr><th class="name">Stage</th><th>Time</th><th class="name">Outputs</th></tr></thead>
<tbody>
${s.stages.map((st) => `<tr><td class="name">${esc(st.name)}</td><td>${esc(duration(st.seconds))}</td><td class="text">${st.outputs.map((o) => `<code>${esc(o)}</code>`).join(', ') || '—'}</td></tr>`).join('\n')}
<tr><th class="name">total</th><th>${esc(duration(total))}</th><th></th></tr>
</tbody>
</table>`
    : '<p class="note">No stage timings recorded.</p>';
  const recipe = s.recipe === undefined ? '(none)' : JSON.stringify(s.recipe, null, 2);
  return `<section id="settings">
<h2>Settings to reproduce</h2>
<div class="grid">
<div><h3>Machine</h3>${kvTable(machine, 'machine')}</div>
<div><h3>Seeds</h3>${kvTable(
    Object.entries(s.seeds).map(([k, v]) => [k, String(v)]),
    'seeds',
  )}</div>
<div><h3>Versions</h3>${kvTable(Object.entries(s.versions), 'versions')}</div>
</div>
<h3>Stages</h3>
${stages}
<h3>Notes</h3>
${s.notes.length ? `<ul class="notes">${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '<p class="note">none</p>'}
<h3>Recipe (exactly as run)</h3>
<pre id="recipe"><code>${esc(recipe)}</code></pre>
</section>`;
}

/** The whole report.html as a string. */
export async function renderReport(summary: RunSummary): Promise<string> {
  const s = summary;
  const { chosen } = headlineRows(s);
  const m = s.machine;
  const machine = `${m.cpu}, ${m.cores} cores, Node ${m.node}, kernels ${m.kernels}${m.blasCore ? ` (${m.blasCore})` : ''}${m.threads !== undefined ? `, ${m.threads} threads` : ''}`;
  const [pareto, training] = await Promise.all([paretoSection(s), trainingSection(s)]);
  const version = s.versions.lonas ? ` ${s.versions.lonas}` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(s.title)}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
<main>
<header id="header">
<h1>${esc(s.title)}</h1>
<p class="meta"><span>method <b>${esc(METHOD_NAMES[s.method] ?? s.method)}</b></span><span>${esc(dateUtc(s.createdAt))}</span><span>${esc(machine)}</span></p>
<p class="lead" id="summary-sentence">${esc(summarySentence(s))}</p>
<nav><a href="#results">Results</a><a href="#pareto">Pareto front</a><a href="#training">Training loss</a><a href="#settings">Settings</a></nav>
</header>
${resultsSection(s, chosen)}
${pareto}
${training}
${settingsSection(s)}
<footer>Generated by lonas${esc(version)} from summary.json (every number measured by this run).</footer>
</main>
</body>
</html>
`;
}

/** Writes `outDir/summary.json` and `outDir/report.html` (each atomically); returns their paths. */
export async function writeReport(summary: RunSummary, outDir: string): Promise<{ html: string; json: string }> {
  mkdirSync(outDir, { recursive: true });
  const html = await renderReport(summary); // render first: a failing chart leaves no half-written pair
  const jsonPath = join(outDir, 'summary.json');
  const htmlPath = join(outDir, 'report.html');
  writeJsonAtomic(jsonPath, summary);
  writeFileAtomic(htmlPath, html);
  return { html: htmlPath, json: jsonPath };
}
