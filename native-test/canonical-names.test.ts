import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, initAndUnseal, type InProcess, rawPathRequest, startInProcess } from './support/service.js';

// The ACL check sees a request's path as sent (URL-decoded); each store must act on that very name,
// or a token denied one name reaches it through another spelling. These attacks come from a token
// allowed on sys/policy/*, sys/mounts/* and sys/audit/* except the names its policy denies.

const HARMLESS = 'path "secret/padmin" {\n  capabilities = ["read"]\n}\n';
const EVERYTHING = 'path "*" {\n  capabilities = ["create", "read", "update", "delete", "list", "sudo"]\n}\n';
const ATTACKER = `
path "sys/policy/*" { capabilities = ["create", "read", "update", "delete"] }
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete"] }
path "sys/policy/padmin" { capabilities = ["deny"] }
path "sys/policies/acl/padmin" { capabilities = ["deny"] }
path "sys/mounts/*" { capabilities = ["create", "update", "delete"] }
path "sys/mounts/secret" { capabilities = ["deny"] }
path "sys/mounts/guarded/" { capabilities = ["deny"] }
path "sys/audit/*" { capabilities = ["update", "delete", "sudo"] }
path "sys/audit/file" { capabilities = ["deny"] }
`;

/**
 * How a request for a name came out: a non-canonical name is "refused", with 400 from the name
 * check, or with 403 before it when the name holds a line break (an ACL pattern's trailing *
 * does not match one, so no rule allows the path).
 */
const outcome = (status: number, spelling: string, canonical: boolean) =>
  !canonical && (status === 400 || (status === 403 && /[\n\r\u2028\u2029]/.test(spelling))) ? 'refused' : status;

/** Every UTF-8 byte of `c` as %XX. */
const percentEncoded = (c: string) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

/** A name as one URL path segment: what is not unreserved is percent-encoded, and so is each unreserved character whose bit is set. */
const asSegment = (name: string, bits: boolean[] = []) => [...name].map((c, i) => (/^[A-Za-z0-9._~-]$/.test(c) && !bits[i] ? c : percentEncoded(c))).join('');

/** Respellings of `name`: each character kept or swapped for a case change, a full-width or lookalike letter, a "%XX" text or an accent; whitespace, dots and slashes around it. */
function spellingsOf(name: string): fc.Arbitrary<{ spelling: string; segment: string }> {
  const lookalike: Record<string, string> = { a: '\u0430', e: '\u0435', i: '\u0131', k: '\u212a', p: '\u0440', s: '\u0455', c: '\u0441' };
  const variant = (c: string) =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constant(c) },
      fc.constantFrom(c.toUpperCase(), String.fromCharCode(c.charCodeAt(0) + 0xfee0), lookalike[c] ?? '\u212a', percentEncoded(c), `${c}\u0301`),
    );
  const around = ['', '', '', '', ' ', '\t', '\n', '\u00a0', '\u200b', '.', '/', '//', '-', '%20'];
  return fc
    .tuple(fc.constantFrom(...around), fc.tuple(...[...name].map(variant)), fc.constantFrom(...around), fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }))
    .map(([before, chars, after, bits]) => {
      const spelling = before + chars.join('') + after;
      return { spelling, segment: asSegment(spelling, bits) };
    });
}

describe('names are acted on only in the spelling the ACL checked', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let attacker: string;

  const send = (method: string, path: string, body?: unknown) => rawPathRequest(base, method, `/v1/${path}`, attacker, body === undefined ? '' : JSON.stringify(body));
  const storedPadmin = async () => (await call(base, 'GET', 'sys/policy/padmin', { token: root })).body.rules;
  /** What the attacker must never gain: every secret, and the keyring. */
  async function expectNoEscalation(): Promise<void> {
    expect(await storedPadmin()).toBe(HARMLESS);
    expect((await call(base, 'GET', 'secret/topsecret', { token: attacker })).status).toBe(403);
    expect((await call(base, 'POST', 'sys/rotate', { token: attacker })).status).toBe(403);
  }

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ root } = await initAndUnseal(base));
    const log = join(await mkdtemp(join(tmpdir(), 'kw-names-')), 'audit.log');
    expect((await call(base, 'PUT', 'sys/audit/file', { token: root, body: { type: 'file', options: { file_path: log } } })).status).toBe(204);
    expect((await call(base, 'PUT', 'sys/mounts/guarded', { token: root, body: { type: 'kv' } })).status).toBe(204);
    expect((await call(base, 'PUT', 'secret/topsecret', { token: root, body: { v: 'crown jewels' } })).status).toBe(204);
    expect((await call(base, 'PUT', 'sys/policy/padmin', { token: root, body: { policy: HARMLESS } })).status).toBe(204);
    expect((await call(base, 'PUT', 'sys/policy/attacker', { token: root, body: { policy: ATTACKER } })).status).toBe(204);
    const created = await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['attacker', 'padmin'] } });
    expect(created.status).toBe(200);
    attacker = created.body.auth.client_token;
  });
  afterAll(() => kw.service.close());

  it('refuses to rewrite a denied policy through another spelling of its name', async () => {
    // The attacker's policy does allow other names, and denies this one as spelled.
    expect((await send('PUT', 'sys/policy/other', { policy: HARMLESS })).status).toBe(204);
    expect((await send('PUT', 'sys/policy/padmin', { policy: EVERYTHING })).status).toBe(403);
    const attacks: Array<[string, string, number]> = [
      ['PUT', 'sys/policy/PADMIN', 400],
      ['PUT', 'sys/policy/Padmin', 400],
      ['PUT', 'sys/policy/padmin%20', 400],
      ['PUT', 'sys/policy/%20padmin', 400],
      ['PUT', 'sys/policy/padmin%09', 400],
      ['PUT', 'sys/policy/p%D0%B0dmin', 400],
      ['PUT', 'sys/policy/%EF%BD%90admin', 400],
      ['PUT', 'sys/policy/pad%CC%81min', 400],
      ['PUT', 'sys/policy/padmin%2F', 400],
      // Decoded before the ACL check: that is "padmin", which the policy denies.
      ['PUT', 'sys/policy/%70admin', 403],
      ['PUT', 'sys/policies/acl/PADMIN', 400],
      ['PUT', 'sys/policies/acl/padmin%20', 400],
      ['PUT', 'sys/policies/acl/%70admin', 403],
      ['DELETE', 'sys/policy/PADMIN', 400],
      ['DELETE', 'sys/policies/acl/Padmin', 400],
    ];
    for (const [method, path, want] of attacks) {
      const res = await send(method, path, method === 'PUT' ? { policy: EVERYTHING } : undefined);
      expect(`${method} ${path} → ${res.status}`, JSON.stringify(res.body)).toBe(`${method} ${path} → ${want}`);
      if (want === 400) expect(res.body.errors[0]).toMatch(/^policy name ".*" is not canonical/);
    }
    await expectNoEscalation();
  });

  it('refuses every generated spelling of the policy name that is not the canonical name itself', async () => {
    const samples = fc.sample(spellingsOf('padmin'), { numRuns: 250, seed: 4711 });
    const created = new Set<string>();
    for (const { spelling, segment } of samples) {
      const res = await send('PUT', `sys/policy/${segment}`, { policy: EVERYTHING });
      // The exact name is denied by the ACL; another canonical name is another policy, one the attacker does not hold.
      const canonical = /^[a-z0-9][a-z0-9_.@-]{0,127}$/.test(spelling);
      const want = spelling === 'padmin' ? 403 : canonical ? 204 : 'refused';
      const got = outcome(res.status, spelling, canonical);
      expect(`${JSON.stringify(spelling)} as ${segment} → ${got}`, JSON.stringify(res.body)).toBe(`${JSON.stringify(spelling)} as ${segment} → ${want}`);
      if (want === 204) created.add(spelling);
    }
    const listed: string[] = (await call(base, 'GET', 'sys/policy', { token: root })).body.policies;
    expect(listed.filter((name) => name.includes('admin')).sort()).toEqual([...created, 'padmin'].sort());
    await expectNoEscalation();
  });

  it('refuses to unmount or remount a denied mount through another spelling of its path', async () => {
    // Allowed where no rule denies: both spellings of an unguarded path work.
    expect((await send('PUT', 'sys/mounts/scratch', { type: 'kv' })).status).toBe(204);
    expect((await send('DELETE', 'sys/mounts/scratch/')).status).toBe(204);
    const attacks: Array<[string, string, number]> = [
      ['DELETE', 'sys/mounts/secret', 403],
      // The same mount: the rule on "sys/mounts/secret" holds for "secret/" too.
      ['DELETE', 'sys/mounts/secret/', 403],
      ['DELETE', 'sys/mounts/secret%2F', 403],
      ['DELETE', 'sys/mounts//secret', 400],
      ['DELETE', 'sys/mounts/secret//', 400],
      ['DELETE', 'sys/mounts/%2Fsecret', 400],
      ['DELETE', 'sys/mounts/%20secret', 400],
      ['DELETE', 'sys/mounts/secret%20', 400],
      ['DELETE', 'sys/mounts/s%D0%B5cret', 400],
      // Mount paths are case-sensitive: another path, where nothing is mounted.
      ['DELETE', 'sys/mounts/SECRET', 404],
      // A rule on the spelling with the slash holds for the one without.
      ['DELETE', 'sys/mounts/guarded', 403],
      ['DELETE', 'sys/mounts/guarded/', 403],
      ['PUT', 'sys/mounts/secret/', 403],
    ];
    for (const [method, path, want] of attacks) {
      const res = await send(method, path, method === 'PUT' ? { type: 'kv' } : undefined);
      expect(`${method} ${path} → ${res.status}`, JSON.stringify(res.body)).toBe(`${method} ${path} → ${want}`);
    }
    const samples = fc.sample(spellingsOf('secret'), { numRuns: 150, seed: 1701 });
    for (const { spelling, segment } of samples) {
      const res = await send('DELETE', `sys/mounts/${segment}`);
      const canonical = /^[A-Za-z0-9_.-]+\/?$/.test(spelling);
      const want = spelling === 'secret' || spelling === 'secret/' ? 403 : canonical ? 404 : 'refused';
      const got = outcome(res.status, spelling, canonical);
      expect(`${JSON.stringify(spelling)} as ${segment} → ${got}`, JSON.stringify(res.body)).toBe(`${JSON.stringify(spelling)} as ${segment} → ${want}`);
    }
    expect(Object.keys((await call(base, 'GET', 'sys/mounts', { token: root })).body.data).sort()).toEqual(['cubbyhole/', 'guarded/', 'secret/']);
    expect((await call(base, 'GET', 'secret/topsecret', { token: root })).body.data).toEqual({ v: 'crown jewels' });
  });

  it('refuses to disable or replace a denied audit device through another spelling of its path', async () => {
    const attacks: Array<[string, string, number]> = [
      ['DELETE', 'sys/audit/file', 403],
      ['DELETE', 'sys/audit/file/', 403],
      ['DELETE', 'sys/audit/file%2F', 403],
      ['DELETE', 'sys/audit//file', 400],
      ['DELETE', 'sys/audit/file//', 400],
      ['DELETE', 'sys/audit/file%20', 400],
      ['DELETE', 'sys/audit/FILE', 404],
      ['PUT', 'sys/audit/file/', 403],
    ];
    for (const [method, path, want] of attacks) {
      const res = await send(method, path, method === 'PUT' ? { type: 'file', options: { file_path: '/dev/null' } } : undefined);
      expect(`${method} ${path} → ${res.status}`, JSON.stringify(res.body)).toBe(`${method} ${path} → ${want}`);
    }
    const samples = fc.sample(spellingsOf('file'), { numRuns: 100, seed: 42 });
    for (const { spelling, segment } of samples) {
      const res = await send('DELETE', `sys/audit/${segment}`);
      const canonical = /^[A-Za-z0-9_.-]+\/?$/.test(spelling);
      const want = spelling === 'file' || spelling === 'file/' ? 403 : canonical ? 404 : 'refused';
      const got = outcome(res.status, spelling, canonical);
      expect(`${JSON.stringify(spelling)} as ${segment} → ${got}`, JSON.stringify(res.body)).toBe(`${JSON.stringify(spelling)} as ${segment} → ${want}`);
    }
    expect(Object.keys((await call(base, 'GET', 'sys/audit', { token: root })).body.data)).toEqual(['file/']);
  });

  it('creates tokens only with canonical policy names', async () => {
    for (const policies of [['PADMIN'], [' padmin'], ['padmin '], ['p\u0430dmin'], 'padmin, default', 'padmin,,default']) {
      const res = await call(base, 'POST', 'auth/token/create', { token: root, body: { policies } });
      expect(res.status, JSON.stringify(policies)).toBe(400);
      expect(res.body.errors[0]).toMatch(/^policy name ".*" is not canonical/);
    }
    const listed = await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: 'padmin,default' } });
    expect(listed.body.auth?.policies).toEqual(['padmin', 'default']);
  });
});
