import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SecurityBarrier } from '../src/barrier/barrier.js';
import { InvalidRequestError, PermissionDeniedError } from '../src/core/errors.js';
import { Acl, parsePolicy } from '../src/core/policy.js';
import { PolicyStore } from '../src/core/policy-store.js';

describe('ACL policies', () => {
  it('parses HCL and JSON documents', async () => {
    const hcl = await parsePolicy('p', `
path "secret/*" {
  capabilities = ["read", "list"]
}
path "secret/+/team-b" {
  capabilities = ["deny"]
}
`);
    expect(hcl.rules.map((r) => [r.pattern, [...r.capabilities]])).toEqual([
      ['secret/*', ['read', 'list']],
      ['secret/+/team-b', ['deny']],
    ]);
    const json = await parsePolicy('q', JSON.stringify({ path: { 'sys/rotate': { capabilities: ['update', 'sudo'] } } }));
    expect([...json.rules[0]!.capabilities]).toEqual(['update', 'sudo']);
  });

  it('refuses bad documents clearly', async () => {
    await expect(parsePolicy('x', 'path "a" { capabilities = ["fly"] }\n')).rejects.toThrow(/invalid capability "fly"/);
    await expect(parsePolicy('x', 'path "a/*/b" {\n capabilities = ["read"]\n}\n')).rejects.toThrow(/only allowed at the end/);
    await expect(parsePolicy('x', 'path "a" {')).rejects.toThrow(/failed to parse policy/);
    await expect(parsePolicy('x', '{"path": ')).rejects.toThrow(/invalid JSON/);
  });

  it('matches exact paths, + segments and * prefixes, the most precise rule winning', async () => {
    const acl = new Acl([
      await parsePolicy('a', `
path "secret/*" {
  capabilities = ["read"]
}
path "secret/app/*" {
  capabilities = ["create", "update"]
}
path "secret/app/admin" {
  capabilities = ["deny"]
}
path "secret/+/shared" {
  capabilities = ["list"]
}
path "secret/team-*" {
  capabilities = ["delete"]
}
`),
    ]);
    expect(acl.capabilities('secret/x')).toEqual(['read']);
    expect(acl.capabilities('secret/deep/er/path')).toEqual(['read']);
    expect(acl.capabilities('secret/app/db')).toEqual(['create', 'update']);
    expect(acl.capabilities('secret/app/admin')).toEqual(['deny']);
    // "secret/+/shared" has its first wildcard later than "secret/*": it wins for secret/x/shared...
    expect(acl.capabilities('secret/x/shared')).toEqual(['list']);
    // ...but "secret/app/*" has its first wildcard later still.
    expect(acl.capabilities('secret/app/shared')).toEqual(['create', 'update']);
    expect(acl.capabilities('secret/team-b/x')).toEqual(['delete']);
    expect(acl.capabilities('other/x')).toEqual(['deny']);
    expect(acl.allows('secret/app/db', 'update')).toBe(true);
    expect(acl.allows('secret/app/db', 'read')).toBe(false);
  });

  it('lets a glob cover every path below its prefix, whatever characters follow (line terminators included)', async () => {
    const acl = new Acl([
      await parsePolicy('a', 'path "secret/+/+" {\n  capabilities = ["read"]\n}\npath "secret/private/*" {\n  capabilities = ["deny"]\n}\n'),
    ]);
    const anyChar = fc.oneof(fc.constantFrom('\n', '\r', '\u2028', '\u2029', '\u0085', '\0', '/', '%0A'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
    fc.assert(
      fc.property(fc.array(anyChar, { maxLength: 12 }), fc.array(anyChar, { maxLength: 12 }), (before, after) => {
        const path = `secret/private/${before.join('')}x${after.join('')}`;
        expect(acl.allows(path, 'read'), JSON.stringify(path)).toBe(false);
      }),
      { numRuns: 2000 },
    );
    expect(acl.allows('secret/public/a\nb', 'read')).toBe(true);
  });

  it('adds up capabilities of the same path across policies, deny winning', async () => {
    const read = await parsePolicy('r', 'path "kv/x" {\n capabilities = ["read"]\n}\n');
    const write = await parsePolicy('w', 'path "kv/x" {\n capabilities = ["update"]\n}\n');
    const deny = await parsePolicy('d', 'path "kv/x" {\n capabilities = ["deny"]\n}\n');
    expect(new Acl([read, write]).capabilities('kv/x')).toEqual(['read', 'update']);
    expect(new Acl([read, write, deny]).capabilities('kv/x')).toEqual(['deny']);
  });

  it('requires sudo only where asked', async () => {
    const acl = new Acl([await parsePolicy('s', 'path "sys/rotate" {\n capabilities = ["update"]\n}\npath "sys/seal" {\n capabilities = ["update", "sudo"]\n}\n')]);
    expect(acl.allows('sys/rotate', 'update')).toBe(true);
    expect(acl.allows('sys/rotate', 'update', true)).toBe(false);
    expect(acl.allows('sys/seal', 'update', true)).toBe(true);
    expect(new Acl([], true).allows('anything', 'sudo', true)).toBe(true);
  });
});

/** One path rule as an HCL document. */
const rule = (pattern: string, caps: string[]) => `path "${pattern}" {\n  capabilities = ${JSON.stringify(caps)}\n}\n`;
/** The rules of a parsed document as [pattern, capabilities] pairs. */
const rulesOf = async (doc: string) => (await parsePolicy('p', doc)).rules.map((r) => [r.pattern, [...r.capabilities]]);

describe('policy documents', () => {
  it('reads JSON after leading whitespace, and keeps the document as written', async () => {
    const raw = '\n  {"path": {"kv/a": {"capabilities": ["read"]}}}\n';
    const p = await parsePolicy('j', raw);
    expect(p).toMatchObject({ name: 'j', raw });
    expect(p.rules.map((r) => [r.pattern, [...r.capabilities]])).toEqual([['kv/a', ['read']]]);
  });

  it('gives an empty rule list to a document without paths', async () => {
    for (const doc of ['', '# nothing here\n', '{}']) {
      const p = await parsePolicy('e', doc);
      expect(p).toEqual({ name: 'e', raw: doc, rules: [] });
    }
  });

  it('joins the capabilities of blocks repeated for one path (HCL blocks and JSON lists)', async () => {
    expect(await rulesOf(`${rule('a', ['read'])}${rule('a', ['list', 'read'])}`)).toEqual([['a', ['read', 'list']]]);
    expect(await rulesOf(JSON.stringify({ path: { a: [{ capabilities: ['update'] }, { capabilities: ['delete'] }] } }))).toEqual([
      ['a', ['update', 'delete']],
    ]);
  });

  it("maps Vault's legacy policy shorthand to capabilities", async () => {
    const legacy = async (policy: string) => rulesOf(`path "a" {\n  policy = "${policy}"\n}\n`);
    expect(await legacy('deny')).toEqual([['a', ['deny']]]);
    expect(await legacy('read')).toEqual([['a', ['read', 'list']]]);
    expect(await legacy('write')).toEqual([['a', ['create', 'read', 'update', 'delete', 'list']]]);
    expect(await legacy('sudo')).toEqual([['a', ['create', 'read', 'update', 'delete', 'list', 'sudo']]]);
    await expect(legacy('admin')).rejects.toThrow(new InvalidRequestError('path "a": invalid policy "admin"'));
    // capabilities win over the shorthand when a block has both.
    expect(await rulesOf('path "a" {\n  capabilities = ["list"]\n  policy = "write"\n}\n')).toEqual([['a', ['list']]]);
  });

  it('says what is wrong with a bad document', async () => {
    const refused = async (doc: string) => {
      const err = await parsePolicy('bad', doc).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, doc).toBeInstanceOf(InvalidRequestError);
      return (err as Error).message;
    };
    expect(await refused('path "a" {')).toMatch(/^failed to parse policy: \[bad\.hcl:1,10-11: Unclosed configuration block/);
    expect(await refused('{"path": ')).toMatch(/^failed to parse policy: invalid JSON: \S/);
    for (const path of ['"x"', 'null', '[]', '3']) expect(await refused(`{"path": ${path}}`)).toBe('failed to parse policy: "path" must be a block');
    expect(await refused('path "a" {}\n')).toBe('path "a": capabilities must be a list');
    expect(await refused('{"path": {"a": {"capabilities": "read"}}}')).toBe('path "a": capabilities must be a list');
    expect(await refused(rule('a', ['read', 'write']))).toBe(
      'path "a": invalid capability "write" (valid: create, read, update, patch, delete, list, sudo, deny)',
    );
    for (const pattern of ['a*b', 'a/*/b', '**', '*a']) expect(await refused(rule(pattern, ['read']))).toBe(`path "${pattern}": "*" is only allowed at the end of a path`);
  });
});

describe('ACL matching', () => {
  const aclOf = async (...docs: string[]) => new Acl(await Promise.all(docs.map((d, i) => parsePolicy(`p${i}`, d))));

  it('matches a pattern against the whole path, its characters taken literally', async () => {
    const acl = await aclOf(rule('kv/a.b', ['read']), rule('kv/(x)?$', ['list']), rule('*', ['deny']), rule('kv/c', ['update']));
    expect(acl.capabilities('kv/a.b')).toEqual(['read']);
    expect(acl.capabilities('kv/axb')).toEqual(['deny']);
    expect(acl.capabilities('kv/(x)?$')).toEqual(['list']);
    expect(acl.capabilities('kv/x')).toEqual(['deny']);
    expect(acl.capabilities('kv/c')).toEqual(['update']);
    expect(acl.capabilities('kv/c2')).toEqual(['deny']);
    expect(acl.capabilities('x/kv/c')).toEqual(['deny']);
  });

  it('matches + to exactly one non-empty segment and a trailing * to any rest, even empty', async () => {
    const acl = await aclOf(rule('s/+/x', ['read']), rule('g/*', ['list']), rule('p/ab*', ['update']));
    expect(acl.capabilities('s/one/x')).toEqual(['read']);
    for (const path of ['s//x', 's/one/two/x', 's/x', 's/one/x/y']) expect(acl.capabilities(path), path).toEqual(['deny']);
    expect(acl.capabilities('g/')).toEqual(['list']);
    expect(acl.capabilities('g/a/b/c')).toEqual(['list']);
    expect(acl.capabilities('g')).toEqual(['deny']);
    expect(acl.capabilities('p/ab')).toEqual(['update']);
    expect(acl.capabilities('p/abc/d')).toEqual(['update']);
    expect(acl.capabilities('p/a')).toEqual(['deny']);
  });

  it('lists capabilities in the canonical order, whatever order the policy wrote them in', async () => {
    const acl = await aclOf(rule('a', ['sudo', 'list', 'delete', 'patch', 'update', 'read', 'create']));
    expect(acl.capabilities('a')).toEqual(['create', 'read', 'update', 'patch', 'delete', 'list', 'sudo']);
  });

  /** Which of two patterns that both match `path` decides, with the rules given in either order. */
  async function winner(a: string, b: string, path: string): Promise<string> {
    const picks = new Set<string>();
    for (const [first, second] of [[a, b], [b, a]] as const) {
      // Two policies: the HCL parser sorts the paths of one document, policies keep their order.
      const acl = await aclOf(rule(first, ['read']), rule(second, ['list']));
      picks.add(acl.capabilities(path)[0] === 'read' ? first : second);
    }
    expect(picks.size, `${a} vs ${b} on ${path} depends on rule order`).toBe(1);
    return [...picks][0]!;
  }

  it("applies Vault's precedence between matching patterns, step by step", async () => {
    // 1. The first wildcard later in the pattern wins (no wildcard counts as latest).
    expect(await winner('s/a/x', 's/+/x', 's/a/x')).toBe('s/a/x');
    expect(await winner('s/a/*', 's/+/x', 's/a/x')).toBe('s/a/*');
    // 2. Same first wildcard: a pattern not ending in * wins.
    expect(await winner('s/+', 's/*', 's/a')).toBe('s/+');
    // 3. Then fewer + segments (here against the longer pattern).
    expect(await winner('s/+/x', 's/+/+', 's/a/x')).toBe('s/+/x');
    expect(await winner('s/+/r/a*', 's/+/+/ab*', 's/q/r/abc')).toBe('s/+/r/a*');
    // A + inside a segment is a literal character, not a + segment.
    expect(await winner('s/+/x+*', 's/+/+/a*', 's/q/x+/ab')).toBe('s/+/x+*');
    // 4. Then the longer pattern (here against the lexicographically greater one: "(" < "*").
    expect(await winner('s/+/ab*', 's/+/a*', 's/q/abc')).toBe('s/+/ab*');
    expect(await winner('s/+/a(*', 's/+/a*', 's/q/a(b')).toBe('s/+/a(*');
    // 5. Then the lexicographically greater one.
    expect(await winner('s/+/a*', 's/+/+*', 's/q/abc')).toBe('s/+/a*');
  });

  it('allows an operation only with its capability, and sudo operations only with sudo too', async () => {
    const acl = await aclOf(rule('a', ['read']), rule('b', ['read', 'sudo']), rule('c', ['sudo']));
    expect(acl.root).toBe(false);
    expect([acl.allows('a', 'read'), acl.allows('a', 'read', true), acl.allows('a', 'list')]).toEqual([true, false, false]);
    expect([acl.allows('b', 'read'), acl.allows('b', 'read', true), acl.allows('b', 'update', true)]).toEqual([true, true, false]);
    expect([acl.allows('c', 'read', true), acl.allows('c', 'sudo')]).toEqual([false, true]);
  });

  it('gives a root token every capability everywhere, reported as ["root"]', () => {
    const root = new Acl([], true);
    expect(root.root).toBe(true);
    expect(root.capabilities('any/path')).toEqual(['root']);
    expect(root.allows('any/path', 'delete')).toBe(true);
    expect(new Acl([]).capabilities('any/path')).toEqual(['deny']);
    expect(new Acl([]).allows('any/path', 'read')).toBe(false);
  });
});

describe('the policy store', () => {
  /** A store over a map standing in for the barrier, and the map, to see what was written. */
  function storeOverMap(): { store: PolicyStore; stored: Map<string, string> } {
    const stored = new Map<string, string>();
    const barrier = {
      get: async (path: string) => (stored.has(path) ? Buffer.from(stored.get(path)!) : undefined),
      put: async (path: string, value: Buffer) => void stored.set(path, value.toString('utf8')),
      delete: async (path: string) => void stored.delete(path),
      list: async (prefix: string) => [...stored.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)),
    };
    return { store: new PolicyStore(barrier as unknown as SecurityBarrier), stored };
  }
  const harmless = rule('secret/padmin', ['read']);
  const everything = rule('*', ['create', 'read', 'update', 'delete', 'list', 'sudo']);

  it('writes, reads and deletes a policy only under its canonical name, refusing every other spelling', async () => {
    const { store, stored } = storeOverMap();
    await store.put('padmin', harmless);
    for (const spelling of ['PADMIN', 'Padmin', 'padmin ', ' padmin', 'padmin\n', '\u212aadmin', 'p\u0430dmin', '%70admin', 'ｐａｄｍｉｎ']) {
      await expect(store.put(spelling, everything), JSON.stringify(spelling)).rejects.toThrow(/is not canonical/);
      await expect(store.get(spelling), JSON.stringify(spelling)).rejects.toThrow(InvalidRequestError);
      await expect(store.delete(spelling), JSON.stringify(spelling)).rejects.toThrow(InvalidRequestError);
    }
    expect(stored).toEqual(new Map([['sys/policy/padmin', harmless]]));
    expect((await store.get('padmin')).raw).toBe(harmless);
    expect(await store.list()).toEqual(['default', 'padmin', 'root']);
  });

  it('refuses the root policy in any spelling, and grants nothing for names that are not canonical', async () => {
    const { store } = storeOverMap();
    await store.put('padmin', everything);
    await expect(store.put('root', harmless)).rejects.toThrow('cannot update the root policy');
    await expect(store.put('ROOT', harmless)).rejects.toThrow(/is not canonical/);
    expect((await store.aclFor(['padmin'])).allows('secret/x', 'read')).toBe(true);
    // A token made before names were checked may hold such a name: it must not reach "padmin" (nor "root").
    for (const held of ['PADMIN', ' padmin', 'Root']) expect((await store.aclFor([held])).capabilities('secret/x'), held).toEqual(['deny']);
  });

  it('requires a capability on every spelling of one thing', async () => {
    const { store } = storeOverMap();
    await store.put('mounts', `${rule('sys/mounts/*', ['update', 'delete'])}${rule('sys/mounts/secret', ['deny'])}`);
    await expect(store.requireOnEvery(['mounts'], ['sys/mounts/kv', 'sys/mounts/kv/'], 'delete', false)).resolves.toBeUndefined();
    await expect(store.requireOnEvery(['mounts'], ['sys/mounts/secret', 'sys/mounts/secret/'], 'delete', false)).rejects.toThrow(
      new PermissionDeniedError(`the token's policies (mounts) do not grant delete on "sys/mounts/secret", which names the same thing as this request's path`),
    );
    await expect(store.requireOnEvery(['mounts'], ['sys/mounts/kv', 'sys/mounts/kv/'], 'delete', true)).rejects.toThrow(/do not grant delete with sudo on "sys\/mounts\/kv"/);
    await expect(store.requireOnEvery(['root'], ['sys/mounts/secret', 'sys/mounts/secret/'], 'delete', true)).resolves.toBeUndefined();
  });
});
