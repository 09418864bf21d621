import { describe, expect, it } from 'vitest';
import { SealedError, UnknownTermError } from '../src/barrier/errors.js';
import { installTimeNow } from '../src/barrier/install-time.js';
import { DEFAULT_ROTATION, Keyring } from '../src/barrier/keyring.js';
import { parseUpgrade, serializeUpgrade, upgradeFromTerm, upgradePath } from '../src/barrier/upgrade.js';

const blob = (n: number) => Buffer.alloc(40, n);

describe('keyring', () => {
  it('starts at term 1 with no encryptions and the default rotation policy', () => {
    const k = Keyring.first(blob(1), 't1');
    expect(k.activeTerm).toBe(1);
    expect(k.active).toEqual({ term: 1, wrapped: blob(1), installTime: 't1', encryptions: 0 });
    expect(k.rotation).toEqual({ maxOperations: 3_865_470_566, interval: 0, enabled: true });
    expect(k.rotation).toBe(DEFAULT_ROTATION);
  });

  it('adds each key as the next active term and keeps the older ones for reading', () => {
    const k = Keyring.first(blob(1), 't1').addKey(blob(2), 't2').addKey(blob(3), 't3');
    expect(k.activeTerm).toBe(3);
    expect(k.active).toEqual({ term: 3, wrapped: blob(3), installTime: 't3', encryptions: 0 });
    expect(k.terms.map((e) => e.term)).toEqual([1, 2, 3]);
    expect(k.term(2)?.wrapped).toEqual(blob(2));
    expect(k.term(4)).toBeUndefined();
  });

  it('is a value: changes return a new keyring and leave the old one as it was', () => {
    const k1 = Keyring.first(blob(1), 't1');
    const k2 = k1.addKey(blob(2), 't2');
    k2.withoutTerms([1]);
    k1.withTerm({ term: 5, wrapped: blob(5), installTime: 't5', encryptions: 0 });
    expect(k1.terms.map((e) => e.term)).toEqual([1]);
    expect(k1.activeTerm).toBe(1);
    expect(k2.terms.map((e) => e.term)).toEqual([1, 2]);
  });

  it('lists terms in ascending order whatever order they were learnt in', () => {
    const k = Keyring.first(blob(1), 't1').addKey(blob(2), 't2').withoutTerms([1]).withTerm({ term: 1, wrapped: blob(1), installTime: 't1', encryptions: 4 });
    expect(k.terms.map((e) => e.term)).toEqual([1, 2]);
  });

  it('makes a learnt term active only when it is newer than the active one', () => {
    const k = Keyring.first(blob(1), 't1').addKey(blob(2), 't2');
    expect(k.withTerm({ term: 3, wrapped: blob(3), installTime: 't3', encryptions: 0 }).activeTerm).toBe(3);
    const older = k.withoutTerms([1]).withTerm({ term: 1, wrapped: blob(1), installTime: 't1', encryptions: 0 });
    expect(older.activeTerm).toBe(2);
  });

  it('removes old terms but never the active one', () => {
    const k = Keyring.first(blob(1), 't1').addKey(blob(2), 't2').addKey(blob(3), 't3');
    expect(k.withoutTerms([1, 2]).terms.map((e) => e.term)).toEqual([3]);
    expect(() => k.withoutTerms([1, 3])).toThrow('cannot remove the active term 3');
  });

  it('takes counts for the terms given and keeps the others', () => {
    const k = Keyring.first(blob(1), 't1').addKey(blob(2), 't2').withCounts(new Map([[1, 7]]));
    expect(k.terms.map((e) => e.encryptions)).toEqual([7, 0]);
    expect(k.withCounts(new Map([[2, 3]])).terms.map((e) => e.encryptions)).toEqual([7, 3]);
  });

  it('keeps terms and active term when the rotation policy changes', () => {
    const k = Keyring.first(blob(1), 't1').addKey(blob(2), 't2');
    const rotation = { maxOperations: 10, interval: 60, enabled: false };
    const changed = k.withRotation(rotation);
    expect(changed.rotation).toEqual(rotation);
    expect(changed.activeTerm).toBe(2);
    expect(changed.terms).toEqual(k.terms);
  });

  it('serializes as versioned JSON with base64 blobs and reads it back whole', () => {
    const k = Keyring.first(blob(1), '2026-01-01T00:00:00.000000001Z')
      .addKey(blob(2), '2026-01-02T00:00:00.000000002Z')
      .withCounts(new Map([[1, 5], [2, 6]]))
      .withRotation({ maxOperations: 100, interval: 3600, enabled: false });
    const body = JSON.parse(k.serialize().toString('utf8'));
    expect(body).toEqual({
      version: 1,
      active: 2,
      terms: [
        { term: 1, wrapped: blob(1).toString('base64'), install_time: '2026-01-01T00:00:00.000000001Z', encryptions: 5 },
        { term: 2, wrapped: blob(2).toString('base64'), install_time: '2026-01-02T00:00:00.000000002Z', encryptions: 6 },
      ],
      rotation: { max_operations: 100, interval: 3600, enabled: false },
    });
    const back = Keyring.deserialize(k.serialize());
    expect(back.activeTerm).toBe(2);
    expect(back.terms).toEqual(k.terms);
    expect(back.rotation).toEqual(k.rotation);
  });

  it('refuses a keyring of another version, or whose active term has no key', () => {
    const body = JSON.parse(Keyring.first(blob(1), 't1').serialize().toString('utf8'));
    expect(() => Keyring.deserialize(Buffer.from(JSON.stringify({ ...body, version: 2 })))).toThrow('unsupported keyring version 2');
    expect(() => Keyring.deserialize(Buffer.from(JSON.stringify({ ...body, active: 2 })))).toThrow("keyring's active term 2 has no key");
  });
});

describe('upgrade entries', () => {
  it('are named core/upgrade/<term they start from>', () => {
    expect(upgradePath(41)).toBe('core/upgrade/41');
  });

  it('take only canonical positive decimal names of up to ten digits', () => {
    expect(upgradeFromTerm('1')).toBe(1);
    expect(upgradeFromTerm('90')).toBe(90);
    expect(upgradeFromTerm('4294967295')).toBe(4294967295);
    for (const name of ['', '0', '07', '12345678901', 'x1', '1x', ' 1', '1.5', '-1', 'a', '1/']) {
      expect(upgradeFromTerm(name), name).toBeUndefined();
    }
  });

  it('carry the next term entry and their creation time through serialization', () => {
    const next = { term: 4, wrapped: blob(4), installTime: 't4', encryptions: 99 };
    const raw = serializeUpgrade({ next, createdMs: 1234 });
    expect(JSON.parse(raw.toString('utf8'))).toEqual({ term: 4, wrapped: blob(4).toString('base64'), install_time: 't4', created_ms: 1234 });
    // Counts are the active node's bookkeeping: a standby starts the learnt term at zero.
    expect(parseUpgrade(raw)).toEqual({ next: { ...next, encryptions: 0 }, createdMs: 1234 });
  });
});

describe('barrier errors and install times', () => {
  it('say "Vault is sealed" (what Vault clients match on) and name the unknown term', () => {
    const sealed = new SealedError();
    expect(sealed.message).toBe('Vault is sealed');
    expect(sealed.name).toBe('SealedError');
    const unknown = new UnknownTermError(7);
    expect(unknown.message).toBe('no decryption key available for term 7');
    expect(unknown.name).toBe('UnknownTermError');
    expect(unknown.term).toBe(7);
  });

  it('reports install times as RFC 3339 with nanoseconds, the given time to the millisecond', () => {
    const now = new Date('2026-03-04T05:06:07.089Z');
    // Many calls: the sub-millisecond digits come from the clock, and must be zero-padded to six every time.
    for (let i = 0; i < 2000; i++) expect(installTimeNow(now)).toMatch(/^2026-03-04T05:06:07\.089\d{6}Z$/);
    expect(installTimeNow()).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });
});
