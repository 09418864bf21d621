import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { apiUrl } from '../src/cli/client.js';
import { UsageError } from '../src/cli/flags.js';

const ADDRESS = 'http://127.0.0.1:8200';

/** Pieces that mean something in a URL or that encoding easily gets wrong, and plain ones between them. */
const PIECES = ['#', '?', '%', '%2F', '%25', '&', '=', ' ', '+', ';', ':', '@', '\\', '.', 'ü', 'e\u0301', '中', '😀', '👩\u200d💻', 'a', 'Z', '0', '-'];

const segment = fc.oneof(fc.string({ unit: fc.constantFrom(...PIECES), maxLength: 8 }), fc.string({ unit: 'grapheme', maxLength: 6 }));
const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((segments) => segments.join('/'));
const hasDotSegment = (p: string) => p.split('/').some((s) => s === '.' || s === '..');

/**
 * What a server gets from the URL: parsed as fetch parses it (which resolves dot segments and
 * splits off query and fragment), then split on "/" and each segment decoded.
 */
function received(url: string): { path: string; sent: URL } {
  const sent = new URL(url);
  expect(sent.pathname.startsWith('/v1/')).toBe(true);
  return { path: sent.pathname.slice('/v1/'.length).split('/').map(decodeURIComponent).join('/'), sent };
}

describe('the CLI client encodes API paths', () => {
  it('sends every path exactly, with no "?" or "#" of its own', () => {
    fc.assert(
      fc.property(
        path.filter((p) => !hasDotSegment(p)),
        (p) => {
          const url = apiUrl(ADDRESS, p);
          const { path: decoded, sent } = received(url);
          expect(decoded).toBe(p);
          // The URL is sent as built: nothing was resolved or re-encoded on the way.
          expect(sent.pathname).toBe(url.slice(ADDRESS.length));
          expect(sent.search).toBe('');
          expect(sent.hash).toBe('');
          expect(url.slice(ADDRESS.length)).not.toMatch(/[?#]/);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps the query apart from the path', () => {
    fc.assert(
      fc.property(
        path.filter((p) => !hasDotSegment(p)),
        fc.dictionary(fc.string({ unit: fc.constantFrom(...PIECES), minLength: 1, maxLength: 4 }), fc.string({ unit: fc.constantFrom(...PIECES), maxLength: 4 })),
        (p, query) => {
          const { path: decoded, sent } = received(apiUrl(ADDRESS, p, query));
          expect(decoded).toBe(p);
          expect(Object.fromEntries(sent.searchParams)).toEqual(query);
          expect(sent.hash).toBe('');
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('refuses paths with "." or ".." segments, which a URL cannot carry', () => {
    fc.assert(
      fc.property(path.filter(hasDotSegment), (p) => {
        expect(() => apiUrl(ADDRESS, p)).toThrow(UsageError);
      }),
    );
    expect(() => apiUrl(ADDRESS, 'secret/../sys/seal')).toThrow(/has a "." or ".." segment/);
    expect(() => apiUrl(ADDRESS, 'secret/./app')).toThrow(UsageError);
  });

  it('encodes the paths of the security report as the keys they name', () => {
    expect(apiUrl(ADDRESS, 'secret/app#old')).toBe(`${ADDRESS}/v1/secret/app%23old`);
    expect(apiUrl(ADDRESS, 'secret/app?version=2', { version: '3' })).toBe(`${ADDRESS}/v1/secret/app%3Fversion%3D2?version=3`);
    expect(apiUrl(ADDRESS, 'secret/100%')).toBe(`${ADDRESS}/v1/secret/100%25`);
    expect(apiUrl(ADDRESS, 'secret/with space/')).toBe(`${ADDRESS}/v1/secret/with%20space/`);
    expect(apiUrl(ADDRESS, 'secret/ünï')).toBe(`${ADDRESS}/v1/secret/%C3%BCn%C3%AF`);
    expect(apiUrl(ADDRESS, 'sys/policies/acl', { list: 'true' })).toBe(`${ADDRESS}/v1/sys/policies/acl?list=true`);
  });

  it('refuses a path that is not valid Unicode with a usage error', () => {
    expect(() => apiUrl(ADDRESS, 'secret/\ud800')).toThrow(/is not valid Unicode/);
  });
});
