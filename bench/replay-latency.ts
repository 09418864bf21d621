import { report } from './result.js';
import { median } from './support.js';

/** Latencies of one keyward operation (rekey, rotation) at two store sizes, and of the raw replay of its PKCS#11 calls. */
export interface ReplayLatency {
  /** The operation as rows name it ("rekey", "rotate"). */
  operation: string;
  /** One trial of it ("rekey", "rotation"). */
  trial: string;
  small: number;
  large: number;
  smallMs: number[];
  largeMs: number[];
  replayMs: number[];
  /** Length of the fixed call recipe the replay runs. */
  recipeCalls: number;
  /** How this run's calls compared with the recipe, for the note. */
  callsThisRun: string;
  /** Lowest acceptable replay/operation ratio. */
  replayTarget: number;
}

/**
 * Reports the large-store median against the small-store one (the operation must not grow with the
 * store) and, fastest against fastest, the replay against the large-store operation: both are fixed
 * work, and under load the fastest trial is the one the scheduler and the garbage collector
 * disturbed least, where a median drifts with them.
 */
export function reportReplayLatency(r: ReplayLatency): void {
  const smallMs = median(r.smallMs);
  const largeMs = median(r.largeMs);
  const fastestMs = Math.min(...r.largeMs);
  const replayMs = Math.min(...r.replayMs);
  const entries = r.large.toLocaleString('en-US');
  console.log(`${r.operation} latency (SoftHSM2, inmem storage, median of ${r.largeMs.length} ${r.trial}s)`);
  console.log(`  ${r.small} entries: ${smallMs.toFixed(2)} ms   ${entries} entries: ${largeMs.toFixed(2)} ms   ratio ${(largeMs / smallMs).toFixed(2)} (target ≤ 1.2)`);
  console.log(
    `  fastest: ${r.trial} ${fastestMs.toFixed(2)} ms   raw replay of ${r.recipeCalls} PKCS#11 calls ${replayMs.toFixed(2)} ms   replay/${r.operation} ${(replayMs / fastestMs).toFixed(2)}   (this run's ${r.trial} made ${r.callsThisRun})`,
  );
  report({ name: `${r.operation} latency, ${entries} vs ${r.small} entries`, value: largeMs, baseline: smallMs, unit: 'ms', ratio: largeMs / smallMs, target: { of: 'ratio', op: '≤', limit: 1.2 } });
  report({
    name: `${r.operation} latency, ${entries} entries, vs raw replay of its ${r.recipeCalls} PKCS#11 calls (fastest of ${r.largeMs.length} each)`,
    value: fastestMs,
    baseline: replayMs,
    unit: 'ms',
    ratio: replayMs / fastestMs,
    target: { of: 'ratio', op: '≥', limit: r.replayTarget },
    note: `this run's ${r.trial} made ${r.callsThisRun}; lower is better; ratio = baseline/value`,
  });
}
