import { describe, expect, it } from 'vitest';
import { Acl, parsePolicy } from '../src/core/policy.js';

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
