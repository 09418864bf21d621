import { describe, expect, it } from 'vitest';
import type { BenchRow, Target } from '../bench/result.js';
import { describeTarget, exitCode, missedRows, verdict } from '../bench/verdict.js';

function row(ratio: number, target?: Target, value = 1): BenchRow {
  return { name: `ratio ${ratio}`, value, baseline: 1, unit: 'ms', ratio, target };
}

const atLeast = (limit: number): Target => ({ of: 'ratio', op: '≥', limit });

describe('bench verdicts', () => {
  it('meets a lower bound on the ratio at or above it and misses it below', () => {
    expect(verdict(row(0.85, atLeast(0.85)))).toBe('met');
    expect(verdict(row(0.9, atLeast(0.85)))).toBe('met');
    expect(verdict(row(0.84, atLeast(0.85)))).toBe('missed');
  });

  it('meets an upper bound on the ratio at or below it and misses it above', () => {
    const target: Target = { of: 'ratio', op: '≤', limit: 1.2 };
    expect(verdict(row(1.2, target))).toBe('met');
    expect(verdict(row(1.21, target))).toBe('missed');
  });

  it('judges a target on the value by the value, not the ratio', () => {
    const target: Target = { of: 'value', op: '<', limit: 1000 };
    expect(verdict(row(0.01, target, 999))).toBe('met');
    expect(verdict(row(100, target, 1000))).toBe('missed');
  });

  it('meets a bound of zero on a count (no failed request) only at zero', () => {
    const none: Target = { of: 'value', op: '≤', limit: 0 };
    expect(verdict(row(0, none, 0))).toBe('met');
    expect(verdict(row(0.0001, none, 1))).toBe('missed');
    expect(verdict(row(0, none, NaN))).toBe('missed');
    expect(describeTarget(none, 'requests')).toBe('≤ 0 requests');
  });

  it('misses every target when the figure is NaN (a measurement that failed)', () => {
    expect(verdict(row(NaN, atLeast(0.5)))).toBe('missed');
    expect(verdict(row(NaN, { of: 'ratio', op: '≤', limit: 1.2 }))).toBe('missed');
  });

  it('says so for a row without a target, which never counts as missed', () => {
    expect(verdict(row(0.01))).toBe('no target');
    expect(missedRows([row(0.01)])).toEqual([]);
  });

  it('shows ratio targets as a bare bound and value targets with their unit and name', () => {
    expect(describeTarget(atLeast(0.85), 'ops/s')).toBe('≥ 0.85');
    expect(describeTarget({ of: 'value', op: '<', limit: 1000 }, 'ms')).toBe('< 1000 ms');
    expect(describeTarget({ of: 'value', op: '≤', limit: 2000, label: 'lock TTL' }, 'ms')).toBe('≤ lock TTL (2000 ms)');
    expect(describeTarget(undefined, 'ms')).toBe('');
  });

  it('exits non-zero with --check when one target of several is missed, and only then', () => {
    const rows = [row(0.9, atLeast(0.85)), row(0.5, atLeast(0.85)), row(0.01)];
    expect(missedRows(rows).map((r) => r.name)).toEqual(['ratio 0.5']);
    expect(exitCode(rows, true)).toBe(1);
    expect(exitCode(rows, false)).toBe(0);
    expect(exitCode([row(0.9, atLeast(0.85)), row(0.01)], true)).toBe(0);
  });
});
