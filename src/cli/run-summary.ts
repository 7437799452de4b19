/** The short plain-text summary printed at the end of a run, pointing to the report. */
import type { RunSummary } from '../report/summary.ts';
import { human, pct } from '../report/format.ts';

export function printRunSummary(s: RunSummary, reportPath: string): void {
  const lines = [
    `\n${s.title}`,
    `${'configuration'.padEnd(34)} ${'avg acc'.padStart(8)} ${'params'.padStart(8)} ${'MACs'.padStart(8)} ${'prefill'.padStart(9)} ${'decode'.padStart(9)}`,
  ];
  for (const r of s.rows) {
    lines.push(
      `${r.name.padEnd(34)} ${pct(r.average).padStart(8)} ${human(r.params).padStart(8)} ${human(r.macs).padStart(8)} ` +
        `${(r.speedup ? `${r.speedup.prefill.toFixed(2)}x` : '—').padStart(9)} ${(r.speedup ? `${r.speedup.decode.toFixed(2)}x` : '—').padStart(9)}`,
    );
  }
  lines.push(`(speed-ups measured against "${s.speedupBaseline}"; accuracy mode: ${s.rows[0]?.mode ?? '—'})`, `report: ${reportPath}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
