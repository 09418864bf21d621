import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../src/core/errors.js';
import { auditPath, mountPath, policyName, requestSpellings } from '../src/core/names.js';

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const POLICY_CHARS = `${LOWER}${DIGITS}_.@-`;
const SEGMENT_CHARS = `${LOWER}${LOWER.toUpperCase()}${DIGITS}_.-`;

// The rules restated character by character: the oracle each function is checked against.
const isCanonicalPolicyName = (s: string) =>
  s.length >= 1 && s.length <= 128 && `${LOWER}${DIGITS}`.includes(s[0]!) && [...s].every((c) => POLICY_CHARS.includes(c));
const isCanonicalSegment = (s: string) => s !== '' && s !== '.' && s !== '..' && [...s].every((c) => SEGMENT_CHARS.includes(c));
const withoutOneTrailingSlash = (s: string) => (s.endsWith('/') ? s.slice(0, -1) : s);
const isCanonicalMountPath = (s: string) => withoutOneTrailingSlash(s).split('/').every(isCanonicalSegment);
const isCanonicalAuditPath = (s: string) => isCanonicalSegment(withoutOneTrailingSlash(s));

/** What a name function does with `raw`: the name it returns, or the message it refuses with. */
function outcome(decide: (raw: string) => string, raw: string): { accepted: string } | { refused: string } {
  try {
    return { accepted: decide(raw) };
  } catch (err) {
    expect(err, JSON.stringify(raw)).toBeInstanceOf(InvalidRequestError);
    return { refused: (err as Error).message };
  }
}

const WHITESPACE = [' ', '\t', '\n', '\r', '\u00a0', '\u2003', '\u3000', '\u200b', '\ufeff'];
/** Letters that look like (or NFKC/lowercase to) an ASCII letter. */
const CONFUSABLES: Record<string, string> = { k: '\u212a', i: '\u0131', a: '\u0430', e: '\u0435', o: '\u043e', p: '\u0440', s: '\u0455' };
const replaceAt = (s: string, i: number, by: string) => s.slice(0, i) + by + s.slice(i + 1);

/** Ways to respell a name, each at a position given by `i` (taken modulo the length). */
const RESPELLINGS: Record<string, (s: string, i: number) => string> = {
  'upper case': (s, i) => replaceAt(s, i % s.length, s[i % s.length]!.toUpperCase()),
  'lower case': (s, i) => replaceAt(s, i % s.length, s[i % s.length]!.toLowerCase()),
  'leading whitespace': (s, i) => WHITESPACE[i % WHITESPACE.length]! + s,
  'trailing whitespace': (s, i) => s + WHITESPACE[i % WHITESPACE.length]!,
  'percent-encoded character': (s, i) => replaceAt(s, i % s.length, `%${s.charCodeAt(i % s.length).toString(16).padStart(2, '0')}`),
  'confusable letter': (s, i) => {
    const at = s.split('').findIndex((c, n) => n >= i % s.length && c.toLowerCase() in CONFUSABLES);
    return at < 0 ? s + CONFUSABLES.k! : replaceAt(s, at, CONFUSABLES[s[at]!.toLowerCase()]!);
  },
  'Kelvin sign': (s, i) => replaceAt(s, i % s.length, '\u212a'),
  'full-width character': (s, i) => replaceAt(s, i % s.length, String.fromCharCode(s.charCodeAt(i % s.length) + 0xfee0)),
  'combining accent': (s, i) => s.slice(0, (i % s.length) + 1) + '\u0301' + s.slice((i % s.length) + 1),
  'trailing dot': (s) => `${s}.`,
  'trailing slash': (s) => `${s}/`,
  'leading slash': (s) => `/${s}`,
  'doubled slash': (s, i) => s.slice(0, i % (s.length + 1)) + '//' + s.slice(i % (s.length + 1)),
};

/** A name respelled by zero to three of the ways above. */
function respelled(base: fc.Arbitrary<string>): fc.Arbitrary<{ base: string; raw: string; how: string[] }> {
  const step = fc.tuple(fc.constantFrom(...Object.keys(RESPELLINGS)), fc.nat());
  return fc.tuple(base, fc.array(step, { maxLength: 3 })).map(([name, steps]) => ({
    base: name,
    raw: steps.reduce((s, [how, i]) => RESPELLINGS[how]!(s, i), name),
    how: steps.map(([how]) => how),
  }));
}

const policyNames = fc.oneof(
  fc.constantFrom('padmin', 'default', 'root', 'kiosk', 'ops-team', 'a', 'svc.k8s@prod'),
  fc.tuple(fc.constantFrom(...LOWER, ...DIGITS), fc.string({ unit: fc.constantFrom(...POLICY_CHARS), maxLength: 24 })).map(([first, rest]) => first + rest),
);
const segment = fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..');
const mountPaths = fc.tuple(fc.array(segment, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([segments, slash]) => segments.join('/') + (slash ? '/' : ''));
const auditPaths = fc.tuple(segment, fc.boolean()).map(([name, slash]) => name + (slash ? '/' : ''));
/** Strings of any characters, and strings nearly all of name characters (so some are accepted). */
const anyStrings = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS, '/', ' ', '%', '@', '\u212a'), maxLength: 40 }));

const RUNS = { numRuns: 2000 };

describe('policy names', () => {
  it('accepts a name iff it is canonical, and returns an accepted name unchanged', () => {
    fc.assert(
      fc.property(fc.oneof(respelled(policyNames).map((r) => r.raw), anyStrings), (raw) => {
        const got = outcome(policyName, raw);
        expect(got, JSON.stringify(raw)).toEqual(isCanonicalPolicyName(raw) ? { accepted: raw } : { refused: expect.stringContaining('is not canonical') });
      }),
      RUNS,
    );
  });

  it('never takes a respelling for the name it respells', () => {
    fc.assert(
      fc.property(respelled(policyNames), ({ base, raw, how }) => {
        fc.pre(raw !== base);
        expect(outcome(policyName, raw), `${how.join(', ')}: ${JSON.stringify(raw)}`).not.toEqual({ accepted: base });
      }),
      RUNS,
    );
  });

  it('suggests only canonical names, and the name itself for case, whitespace and compatibility forms', () => {
    const plain = ['upper case', 'lower case', 'leading whitespace', 'trailing whitespace', 'Kelvin sign', 'full-width character'];
    fc.assert(
      fc.property(respelled(policyNames), ({ base, raw, how }) => {
        const got = outcome(policyName, raw);
        if (!('refused' in got)) return;
        const suggested = /; use "([^"]*)"$/.exec(got.refused)?.[1];
        if (suggested !== undefined) expect(isCanonicalPolicyName(suggested) && suggested !== raw).toBe(true);
        // The Kelvin sign and full-width letters stand for ASCII letters (NFKC); a zero-width space is not whitespace to trim.
        if (how.every((h) => plain.includes(h)) && raw.trim().normalize('NFKC').toLowerCase() === base) expect(suggested).toBe(base);
      }),
      RUNS,
    );
  });

  it('says what is wrong, showing invisible and lookalike characters', () => {
    expect(() => policyName('PADMIN')).toThrow(
      new InvalidRequestError(
        'policy name "PADMIN" is not canonical: policy names are lower case letters, digits and . _ @ -, starting with a letter or digit, at most 128 characters, without spaces; use "padmin"',
      ),
    );
    expect(() => policyName('padmin ')).toThrow(/^policy name "padmin " is not canonical: .*; use "padmin"$/);
    expect(() => policyName('\u212aiosk')).toThrow(/^policy name "\\u212aiosk" is not canonical: .*; use "kiosk"$/);
    expect(() => policyName('p\u0430dmin')).toThrow(/^policy name "p\\u0430dmin" is not canonical: [^;]*$/);
    expect(() => policyName('%70admin')).toThrow(/^policy name "%70admin" is not canonical: [^;]*$/);
    expect(() => policyName('')).toThrow(/^policy name "" is not canonical/);
    expect(() => policyName('a'.repeat(129))).toThrow(/is not canonical/);
    expect([policyName('padmin'), policyName('padmin.'), policyName('a'.repeat(128))]).toEqual(['padmin', 'padmin.', 'a'.repeat(128)]);
  });
});

describe('mount and audit device paths', () => {
  const cases = [
    { kind: 'mount path', decide: mountPath, canonical: isCanonicalMountPath, names: mountPaths },
    { kind: 'audit device path', decide: auditPath, canonical: isCanonicalAuditPath, names: auditPaths },
  ];

  for (const { kind, decide, canonical, names } of cases) {
    it(`${kind}: accepts a path iff it is canonical, storing it as given with its one trailing slash`, () => {
      fc.assert(
        fc.property(fc.oneof(respelled(names).map((r) => r.raw), anyStrings), (raw) => {
          const got = outcome(decide, raw);
          expect(got, JSON.stringify(raw)).toEqual(canonical(raw) ? { accepted: `${withoutOneTrailingSlash(raw)}/` } : { refused: expect.stringContaining('is not canonical') });
        }),
        RUNS,
      );
    });

    it(`${kind}: two spellings name one stored path only when they differ by the trailing slash, and the route checks both`, () => {
      fc.assert(
        fc.property(respelled(names), respelled(names), (a, b) => {
          const [first, second] = [outcome(decide, a.raw), outcome(decide, b.raw)];
          if (!('accepted' in first) || !('accepted' in second)) return;
          expect(requestSpellings(first.accepted)).toContain(a.raw);
          for (const spelling of requestSpellings(first.accepted)) expect(decide(spelling)).toBe(first.accepted);
          if (first.accepted === second.accepted) expect(withoutOneTrailingSlash(a.raw)).toBe(withoutOneTrailingSlash(b.raw));
        }),
        RUNS,
      );
    });
  }

  it('keeps the case of mount paths (they are case-sensitive, as the ACL is) and refuses every other variation', () => {
    expect([mountPath('kv'), mountPath('kv/'), mountPath('KV'), mountPath('team/kv.v2'), mountPath('kv.')]).toEqual(['kv/', 'kv/', 'KV/', 'team/kv.v2/', 'kv./']);
    for (const raw of ['/kv', 'kv//', ' kv', 'kv ', 'kv%2F', 'team//kv', 'a/../b', 'a/./b', '.', '..', '', '/', '\u212av', 'k\u0475']) {
      expect(() => mountPath(raw), JSON.stringify(raw)).toThrow(InvalidRequestError);
    }
    expect(() => mountPath('//kv/')).toThrow(new InvalidRequestError(
      'mount path "//kv/" is not canonical: mount paths are segments of letters, digits and . _ - joined by single "/", with no leading "/" and at most one trailing "/"; use "kv/"',
    ));
    expect(requestSpellings('team/kv/')).toEqual(['team/kv', 'team/kv/']);
  });

  it('takes audit device paths as one segment', () => {
    expect([auditPath('file'), auditPath('file/'), auditPath('File-2')]).toEqual(['file/', 'file/', 'File-2/']);
    for (const raw of ['a/b', '/file', 'file//', ' file', 'file%2F', '..', '']) expect(() => auditPath(raw), JSON.stringify(raw)).toThrow(InvalidRequestError);
    expect(() => auditPath(' file ')).toThrow(/^audit device path " file " is not canonical: .*; use "file"$/);
  });
});
