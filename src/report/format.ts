/** Text helpers for the report: HTML escaping and human-readable numbers. */
import { withinNoise } from '../nas/cost.ts';
import type { Spread } from '../nas/cost.ts';

/** Escapes text for HTML element content and (double- or single-quoted) attribute values. */
export function esc(value: unknown): string {
  return String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** An accuracy in [0, 1] as a percentage with one decimal ("98.7%"); "—" when missing. */
export function pct(x: number | undefined | null, digits = 1): string {
  return x === undefined || x === null || !Number.isFinite(x) ? '—' : `${(x * 100).toFixed(digits)}%`;
}

/** A count in K/M/G/T with three significant digits ("1.23M", "512", "12.0K"). */
export function human(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [div, unit] of units) {
    // 999.6K rounds to 1000K at 3 significant digits: promote to the next unit instead
    if (a >= div * 0.9995) return `${trim3(n / div)}${unit}`;
  }
  return Number.isInteger(n) ? String(n) : trim3(n);
}

function trim3(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** The exact count with thousands separators ("1,234,567"). */
export function exact(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

/** Milliseconds: "12.3 ms", "0.456 ms", "1234 ms". */
export function ms(x: number | undefined | null): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  return `${a >= 100 ? x.toFixed(0) : a >= 1 ? x.toFixed(1) : x.toFixed(3)} ms`;
}

/**
 * A measured speed-up with its noise: "1.28× (1.10–1.40)" (median, min–max over interleaved runs), or
 * "≈ 1× (within noise)" when the interval includes 1.
 */
export function speedupText(s: Spread | undefined | null): string {
  if (!s || !Number.isFinite(s.median)) return '—';
  return withinNoise(s) ? '≈ 1× (within noise)' : `${times(s.median)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

/** A speed-up factor: "1.28×". */
export function times(x: number | undefined | null): string {
  return x === undefined || x === null || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`;
}

/** A duration: "0.4 s", "42.1 s", "3 min 05 s", "1 h 02 min". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** An ISO timestamp as "2025-03-01 14:05 UTC"; anything unparsable is returned unchanged. */
export function dateUtc(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
