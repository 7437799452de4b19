/** The short plain-text summary printed at the end of a run, pointing to the report. */
import type { RunSummary } from '../report/summary.ts';
import { human, pct, speedupText } from '../report/format.ts';
import { summarySentence } from '../report/html.ts';
import { costDefinitionLabel } from '../nas/cost.ts';

export function printRunSummary(s: RunSummary, reportPath: string): void {
  const w = 22;
  const lines = [
    `\n${s.title}`,
    `${'configuration'.padEnd(34)} ${'avg acc'.padStart(8)} ${'params'.padStart(8)} ${'MACs'.padStart(8)} ${'prefill'.padStart(w)} ${'decode'.padStart(w)}`,
  ];
  for (const r of s.rows) {
    lines.push(
      `${r.name.padEnd(34)} ${pct(r.average).padStart(8)} ${human(r.params).padStart(8)} ${human(r.macs).padStart(8)} ` +
        `${speedupText(r.speedup?.prefill).padStart(w)} ${speedupText(r.speedup?.decode).padStart(w)}`,
    );
  }
  lines.push(
    `(params and MACs: ${costDefinitionLabel(s.cost)}; speed-ups against "${s.speedupBaseline}", median (min–max) of interleaved runs; accuracy mode: ${s.rows[0]?.mode ?? '—'})`,
    summarySentence(s),
    `report: ${reportPath}\n`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}
