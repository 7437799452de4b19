/** report.html from a hand-built RunSummary: sections, table values, the generated sentence, escaping, headless Chromium. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headlineRows, renderReport, summarySentence, writeReport } from '../../src/report/html.ts';
import { downsample, scopeSvgIds } from '../../src/report/charts.ts';
import { dateUtc, duration, esc, human, ms, pct, speedupText, times } from '../../src/report/format.ts';
import { makeSummary } from './fixture.ts';
import { CHROMIUM, INSTALL_HINT, consoleLines, pngSize, runChromium } from './chromium.ts';

const SECTIONS = ['header', 'summary-sentence', 'results', 'pareto', 'training', 'settings'];

/** The inner HTML of the `<section id=…>` (sections do not nest). */
function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}">`);
  assert.ok(start >= 0, `section #${id} missing`);
  return html.slice(start, html.indexOf('</section>', start));
}

function decode(s: string): string {
  return s
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
}

interface Cell {
  cls: string;
  title?: string;
  text: string;
}

/** The results table's body rows as cells (class, decoded title, decoded text). */
function resultRows(html: string): { cls: string; cells: Cell[] }[] {
  const body = /<table class="results">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(html);
  assert.ok(body, 'results table missing');
  return [...body[1].matchAll(/<tr(?: class="([^"]*)")?>([\s\S]*?)<\/tr>/g)].map(([, cls, tr]) => ({
    cls: cls ?? '',
    cells: [...tr.matchAll(/<td(?: class="([^"]*)")?(?: title="([^"]*)")?>([\s\S]*?)<\/td>/g)].map(([, c, t, x]) => ({
      cls: c ?? '',
      ...(t !== undefined ? { title: decode(t) } : {}),
      text: decode(x),
    })),
  }));
}

test('number formatting', () => {
  assert.equal(pct(0.9871), '98.7%');
  assert.equal(pct(undefined), '—');
  assert.equal(human(512), '512');
  assert.equal(human(12_345), '12.3K');
  assert.equal(human(4_718_592), '4.72M');
  assert.equal(human(999_999), '1.00M');
  assert.equal(human(1_207_959_552), '1.21G');
  assert.equal(ms(41.26), '41.3 ms');
  assert.equal(times(1.2849), '1.28×');
  assert.equal(duration(143.7), '2 min 24 s');
  assert.equal(dateUtc('2025-03-14T09:26:53.000Z'), '2025-03-14 09:26 UTC');
  assert.equal(esc(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('every section is present, with both charts as inline SVG', async () => {
  const html = await renderReport(makeSummary());
  for (const id of SECTIONS) assert.ok(html.includes(`id="${id}"`), `#${id}`);
  assert.match(section(html, 'pareto'), /<svg[^>]*class="marks"/);
  assert.match(section(html, 'training'), /<svg[^>]*class="marks"/);
  assert.ok(html.length < 200_000, `report is ${html.length} bytes`);
  // the header names the method, the date and the machine
  const header = html.slice(html.indexOf('<header id="header">'), html.indexOf('</header>'));
  for (const s of ['LoNAS demo', 'LoNAS', '2025-03-14 09:26 UTC', 'AMD EPYC 7B13', '2 cores']) assert.ok(header.includes(s), s);
  // the settings: recipe as pretty JSON, seeds, versions, stages with a total, notes
  const settings = section(html, 'settings');
  assert.ok(settings.includes(esc(JSON.stringify(makeSummary().recipe, null, 2))));
  for (const s of ['finetune', 'vega-lite', '6.4.3', 'openblas-haswell', 'from the cache', '2 min 24 s', 'total', '5 min 23 s']) {
    assert.ok(settings.includes(s) || decode(settings).includes(s), s);
  }
  // ids inside the two SVGs are scoped (no collisions)
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids.join(' ')}`);
});

test('the results table has one row per result with the right values', async () => {
  const s = makeSummary();
  const rows = resultRows(await renderReport(s));
  assert.equal(rows.length, 4);
  assert.deepEqual(
    rows.map((r) => r.cells[0].text),
    ['LoRA baseline', 'LoNAS maximal', 'LoNAS heuristic', 'LoNAS searchedextracted'],
  );
  for (const [i, r] of rows.entries()) {
    const src = s.rows[i];
    const by = (cls: string) => r.cells.find((c) => c.cls.split(' ').includes(cls))!;
    const acc = r.cells.filter((c) => c.cls === 'acc');
    assert.equal(acc.length, s.tasks.length);
    s.tasks.forEach((t, k) => {
      const ts = src.perTask[t];
      assert.equal(acc[k].text, pct(ts.accuracy));
      assert.equal(acc[k].title, `${t}: n = ${ts.n}, 95% CI ${pct(ts.ci[0])}–${pct(ts.ci[1])}`);
    });
    assert.equal(by('avg').text, pct(src.average));
    assert.equal(by('params').text, human(src.params));
    assert.equal(by('params').title, src.params.toLocaleString('en-US'));
    assert.equal(by('nonzero').text, human(src.nonZeroParams));
    assert.equal(by('macs').text, human(src.macs));
    assert.equal(by('prefill').text, ms(src.latency!.prefillMs.median));
    assert.equal(by('speedup-prefill').text, speedupText(src.speedup?.prefill));
    assert.equal(by('speedup-decode').text, speedupText(src.speedup?.decode));
    assert.equal(by('mode').text, 'generate');
  }
  assert.equal(rows[3].cells[0].title, 'sub-network: layers.0.mlp_width=640, layers.0.rank=16');
  assert.deepEqual(
    rows.map((r) => r.cls),
    ['baseline', '', '', 'chosen extracted'],
  );
  assert.equal(resultRows(await renderReport(s))[2].cells.find((c) => c.cls === 'avg')!.text, '56.0%');
});

test('the summary sentence is computed from the rows', async () => {
  const s = makeSummary();
  const { baseline, chosen } = headlineRows(s);
  assert.equal(baseline?.name, 'LoRA baseline');
  assert.equal(chosen?.name, 'LoNAS searched');
  const keep = pct(s.rows[3].average / s.rows[0].average);
  const fewer = Math.round((1 - s.rows[3].params / s.reference!.params) * 100);
  assert.equal(
    summarySentence(s),
    `LoNAS searched keeps ${keep} of the average accuracy of LoRA baseline (${pct(s.rows[3].average)} vs ${pct(s.rows[0].average)}) with ${fewer}% fewer parameters and 21% fewer MACs than the base model and runs 1.28× faster than LoRA baseline (prefill 1.18–1.38× over interleaved runs).`,
  );
  assert.equal(keep, '98.0%');
  assert.equal(fewer, 21);
  const html = await renderReport(s);
  assert.ok(html.includes(`id="summary-sentence">${esc(summarySentence(s))}</p>`));

  // change the numbers: the sentence follows
  const t = makeSummary();
  const slow = { min: 0.74, median: 0.8, max: 0.86 };
  t.rows[3] = { ...t.rows[3], average: 0.7, params: 5_000_000, nonZeroParams: 2_500_000, speedup: { prefill: slow, decode: slow } };
  assert.equal(
    summarySentence(t),
    `LoNAS searched exceeds the average accuracy of LoRA baseline (70.0% vs ${pct(t.rows[0].average)}) with 6% more parameters (47% fewer non-zero) and 21% fewer MACs than the base model and runs 1.25× slower than LoRA baseline (prefill 0.74–0.86× over interleaved runs).`,
  );
  // no extracted row: the last "searched" row; no speed-up: no speed clause
  const u = makeSummary();
  u.rows = u.rows
    .slice(0, 3)
    .concat(
      { ...u.rows[3], extracted: false, speedup: null, name: 'LoNAS searched (not extracted)' },
      { ...u.rows[1], name: 'LoNAS other' },
    );
  assert.equal(headlineRows(u).chosen?.name, 'LoNAS searched (not extracted)');
  assert.doesNotMatch(summarySentence(u), /faster|slower/);
  // a single row
  const v = makeSummary();
  v.method = 'lora';
  v.rows = v.rows.slice(0, 1);
  assert.equal(
    summarySentence(v),
    `LoRA baseline reaches an average accuracy of ${pct(v.rows[0].average)} over 3 tasks with 4.72M parameters and 1.21G MACs per forward pass (merged, 1×256 forward).`,
  );
  // none
  v.rows = [];
  assert.equal(summarySentence(v), 'No results were recorded in this run.');
  const empty = await renderReport(v);
  for (const id of SECTIONS) assert.ok(empty.includes(`id="${id}"`), `#${id}`);
});

test('size reductions are against the base model, not an unmerged LoRA baseline whose adapter counted as parameters', () => {
  const s = makeSummary();
  const P = s.reference!.params;
  s.rows[0] = { ...s.rows[0], params: 2 * P, nonZeroParams: 2 * P, macs: 2 * s.reference!.macs }; // as an unmerged baseline counted
  assert.match(summarySentence(s), / with 21% fewer parameters and 21% fewer MACs than the base model /);
  assert.doesNotMatch(summarySentence(s), /60% fewer/);
});

test('a speed-up whose range includes 1 reads "within noise"; an overhead-dominated model says so', async () => {
  const s = makeSummary();
  s.rows[3] = { ...s.rows[3], speedup: { prefill: { min: 0.9, median: 1.96, max: 3.45 }, decode: { min: 0.8, median: 1.1, max: 1.4 } } };
  assert.match(
    summarySentence(s),
    / and runs at the same speed as LoRA baseline within noise \(prefill 0\.90–3\.45× over interleaved runs\)\.$/,
  );
  assert.doesNotMatch(summarySentence(s), /faster|1\.96/);
  assert.equal(speedupText(s.rows[3].speedup!.prefill), '≈ 1× (within noise)');
  assert.equal(speedupText({ min: 1.1, median: 1.3, max: 1.5 }), '1.30× (1.10–1.50)');
  const cells = resultRows(await renderReport(s))[3].cells;
  assert.equal(cells.find((c) => c.cls === 'speedup-prefill')!.text, '≈ 1× (within noise)');
  assert.doesNotMatch(summarySentence(s), /overhead/);
  s.rows[3].latency = { ...s.rows[3].latency!, overheadShare: 0.8 };
  assert.match(
    summarySentence(s),
    /per-call overhead dominates the timings \(80% of a decode step of LoNAS searched is not explained by reading its weights\)/,
  );
  assert.match(await renderReport(s), /per-call overhead dominates/);
});

test('all text from the summary is escaped', async () => {
  const evil = '<script>alert(1)</script>';
  const s = makeSummary();
  s.title = `Report ${evil}`;
  s.tasks = [...s.tasks, evil];
  for (const r of s.rows) r.perTask[evil] = { accuracy: 0.5, n: 10, ci: [0.2, 0.8] };
  s.rows[1].name = `"><img src=x onerror=alert(2)> ${evil}`;
  s.rows[2].subnet = { '" onmouseover="alert(3)': 1 };
  s.machine.cpu = evil;
  s.versions[evil] = evil;
  s.seeds[evil] = 1;
  s.recipe = { model: `</code></pre>${evil}` };
  s.notes.push(evil);
  s.stages.push({ name: evil, seconds: 1, outputs: [evil] });
  s.pareto!.points[0].label = evil;
  s.curves[0].name = evil;
  s.speedupBaseline = s.rows[0].name;
  const html = await renderReport(s);
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /<img/i);
  assert.doesNotMatch(html, /onmouseover="/);
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes(`<th>${esc(evil)}</th>`), 'the task column header is escaped');
  // the structure is intact: still 4 rows and every section
  assert.equal(resultRows(html).length, 4);
  for (const id of SECTIONS) assert.ok(html.includes(`id="${id}"`), `#${id}`);
});

test('no search: the Pareto section says so; no curves: the training section says so', async () => {
  const s = makeSummary();
  s.pareto = null;
  s.curves = [];
  const html = await renderReport(s);
  assert.doesNotMatch(section(html, 'pareto'), /<svg/);
  assert.match(section(html, 'pareto'), /No architecture search in this run/);
  assert.doesNotMatch(section(html, 'training'), /<svg/);
  assert.match(section(html, 'training'), /No training curves/);
  delete s.pareto; // optional in the type
  assert.match(section(await renderReport(s), 'pareto'), /No architecture search/);
});

test('curves with very different lengths get one panel each; long curves are averaged down', async () => {
  const s = makeSummary();
  s.curves.unshift({ name: 'pretrain', train: Array.from({ length: 3000 }, (_, i) => ({ step: i + 1, loss: 6 - Math.log1p(i) / 2 })) });
  const html = await renderReport(s);
  assert.match(section(html, 'training'), /One panel per curve/);
  assert.match(section(html, 'training'), /300 points for: pretrain/);
  const d = downsample(
    Array.from({ length: 10 }, (_, i) => ({ step: i, loss: i })),
    5,
  );
  assert.deepEqual(
    d,
    [0.5, 2.5, 4.5, 6.5, 8.5].map((x) => ({ step: x, loss: x })),
  );
  assert.equal(
    scopeSvgIds('<clipPath id="clip1"></clipPath><g clip-path="url(#clip1)"></g>', 'p'),
    '<clipPath id="p-clip1"></clipPath><g clip-path="url(#p-clip1)"></g>',
  );
});

test('the page is self-contained: no scripts, no external resources', async () => {
  const html = await renderReport(makeSummary());
  assert.doesNotMatch(html, /<script|<iframe|<object|<embed/i);
  assert.doesNotMatch(html, /\b(?:src|href)="(?!#|data:)/i, 'only fragment and data: links');
  assert.doesNotMatch(html, /url\((?!#)/i, 'only url(#…) references');
  assert.doesNotMatch(html, /@import/i);
  assert.match(html, /Content-Security-Policy/);
});

test('writeReport writes report.html and summary.json atomically', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'lonas-report-')), 'run', 'report');
  const s = makeSummary();
  const out = await writeReport(s, dir);
  assert.deepEqual(out, { html: join(dir, 'report.html'), json: join(dir, 'summary.json') });
  assert.deepEqual(JSON.parse(readFileSync(out.json, 'utf8')), JSON.parse(JSON.stringify(s)));
  assert.equal(readFileSync(out.html, 'utf8'), await renderReport(s));
  assert.deepEqual(readdirSync(dir).sort(), ['report.html', 'summary.json']); // no temp files left
});

test("Chromium's console-message detector sees a page's errors (control)", { skip: !existsSync(CHROMIUM) && 'see the next test' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lonas-report-ctl-'));
  const file = join(dir, 'bad.html');
  writeFileSync(file, '<!DOCTYPE html><meta charset="utf-8"><p>x</p><script>console.error("deliberate"); throw new Error("boom")</script>');
  const r = runChromium(file, ['--dump-dom']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(
    r.console.some((l) => l.includes('deliberate')),
    r.stderr,
  );
  assert.ok(
    r.console.some((l) => l.includes('Uncaught Error: boom')),
    r.stderr,
  );
  assert.deepEqual(consoleLines('[1:1:0101/000000.000000:ERROR:dbus/bus.cc:405] Failed to connect to the bus'), []);
});

test('report.html opens in headless Chromium without console errors; screenshot saved', async () => {
  assert.ok(existsSync(CHROMIUM), INSTALL_HINT);
  {
    const dir = mkdtempSync(join(tmpdir(), 'lonas-report-shot-'));
    const { html } = await writeReport(makeSummary(), dir);
    const png = join(dir, 'report.png');
    const shot = runChromium(html, [`--screenshot=${png}`, '--window-size=1200,2000', '--hide-scrollbars']);
    assert.equal(shot.status, 0, shot.stderr);
    assert.deepEqual(shot.console, [], `console messages:\n${shot.console.join('\n')}`);
    assert.ok(existsSync(png), `no screenshot: ${shot.stderr}`);
    const size = statSync(png).size;
    assert.ok(size > 50_000, `screenshot is only ${size} bytes`);
    assert.deepEqual(pngSize(readFileSync(png)), { width: 1200, height: 2000 });
    console.log(`report screenshot: ${png}`);

    // the DOM the browser built: every section, two rendered charts, the table's rows
    const dom = runChromium(html, ['--dump-dom']);
    assert.equal(dom.status, 0, dom.stderr);
    assert.deepEqual(dom.console, [], `console messages:\n${dom.console.join('\n')}`);
    for (const id of SECTIONS) assert.ok(dom.stdout.includes(`id="${id}"`), `#${id} in the DOM`);
    assert.equal(dom.stdout.match(/<svg[^>]*class="marks"/g)?.length, 2, 'two charts');
    assert.equal(resultRows(dom.stdout).length, 4);
  }
});
