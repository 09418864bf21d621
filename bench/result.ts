/**
 * What a row must show to pass: a bound on its ratio or, where the baseline is only context (a
 * lock TTL, one read), on its value in the row's unit.
 */
export interface Target {
  of: 'ratio' | 'value';
  op: '≥' | '≤' | '<';
  limit: number;
  /** Names the limit in the table when it is more than a number ("lock TTL"). */
  label?: string;
}

/** One benchmark row: a measured value against a limit measured in the same run. */
export interface BenchRow {
  name: string;
  value: number;
  baseline: number;
  unit: string;
  /** value/baseline, or baseline/value when lower is better. */
  ratio: number;
  target?: Target;
  note?: string;
}

/** Prints a row for bench/run.ts to collect (one JSON object per line, after "RESULT "). */
export function report(row: BenchRow): void {
  console.log(`RESULT ${JSON.stringify(row)}`);
}
