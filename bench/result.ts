/** One benchmark row: a measured value against a limit measured in the same run. */
export interface BenchRow {
  name: string;
  value: number;
  baseline: number;
  unit: string;
  /** value/baseline, or baseline/value when lower is better. */
  ratio: number;
  target?: string;
  note?: string;
}

/** Prints a row for bench/run.ts to collect (one JSON object per line, after "RESULT "). */
export function report(row: BenchRow): void {
  console.log(`RESULT ${JSON.stringify(row)}`);
}
