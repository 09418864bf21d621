// Whether each row met its target in this run, and what `npm run bench -- --check` exits with.
import type { BenchRow, Target } from './result.js';

export type Verdict = 'met' | 'missed' | 'no target';

const HOLDS: Record<Target['op'], (figure: number, limit: number) => boolean> = {
  '≥': (figure, limit) => figure >= limit,
  '≤': (figure, limit) => figure <= limit,
  '<': (figure, limit) => figure < limit,
};

/** Decided from this run's figure alone; a NaN figure (a broken measurement) never meets a target. */
export function verdict(row: BenchRow): Verdict {
  const target = row.target;
  if (!target) return 'no target';
  const figure = target.of === 'ratio' ? row.ratio : row.value;
  return HOLDS[target.op](figure, target.limit) ? 'met' : 'missed';
}

/** The target as the table shows it: "≥ 0.85" for a ratio, "< 1000 ms" for a value. */
export function describeTarget(target: Target | undefined, unit: string): string {
  if (!target) return '';
  if (target.of === 'ratio') return `${target.op} ${target.limit}`;
  const limit = `${target.limit} ${unit}`;
  return `${target.op} ${target.label ? `${target.label} (${limit})` : limit}`;
}

export function missedRows(rows: readonly BenchRow[]): BenchRow[] {
  return rows.filter((row) => verdict(row) === 'missed');
}

/** Non-zero only when checking and a target was missed: without --check the bench only reports. */
export function exitCode(rows: readonly BenchRow[], check: boolean): number {
  return check && missedRows(rows).length > 0 ? 1 : 0;
}
