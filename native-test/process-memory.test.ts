import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combine } from '../src/crypto/shamir.js';
import { openBarrierValue, storedEntry, termKeysInClear } from './support/barrier-in-clear.js';
import { type Hit, scanProcessMemory, spellingsOf } from './support/process-memory.js';
import { type FreshServer, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

function describeHits(hits: Hit[]): string {
  return hits.map((h) => `${h.needle} at 0x${h.address.toString(16)} in ${h.mapping}`).join('\n');
}

/** The raw bytes of shares given as hex. */
function shareBytes(label: string, shares: readonly string[]): Array<[string, Buffer]> {
  return shares.map((s, i) => [`${label} ${i}/raw`, Buffer.from(s, 'hex')]);
}

/**
 * A keyward server process taken through init (5 shares, threshold 3), unseal, KV writes, a
 * rotate, a rekey and a seal, its whole memory read through /proc/PID/mem at three moments. A V8
 * heap snapshot leaves out Buffer contents (ArrayBuffer backing stores); this sees every byte.
 *
 * Forbidden at every moment: the root keys and the term keys, raw or spelt in hex or base64,
 * and the raw bytes of every share. The shares' hex and base64 texts are not: they arrive and
 * leave as JSON text (request and response bodies, V8 strings), which the server cannot clear.
 */
describe('secrets in the memory of a running server process', () => {
  let fresh: FreshServer;
  let base: string;
  let rootToken: string;
  let shares: string[];
  let rootKey: Buffer;
  let newShares: string[] = [];
  let newRootKey: Buffer | undefined;
  let terms: Buffer[] = [];
  /** core/cluster as stored: never changes after init, and the server's entry cache holds these bytes in a Buffer. */
  let storedCluster: Buffer;

  function everySecret(): Map<string, Buffer> {
    return new Map([
      ...spellingsOf('root key', rootKey),
      ...(newRootKey ? spellingsOf('new root key', newRootKey) : []),
      ...terms.flatMap((t, i) => [...spellingsOf(`term ${i + 1}`, t)]),
      ...shareBytes('share', shares),
      ...shareBytes('new share', newShares),
    ]);
  }

  /** Scans the server: every control must be found (the scan sees Buffers and strings), no secret anywhere. */
  function expectNoSecretIn(controls: Map<string, Buffer>): void {
    const secrets = everySecret();
    const result = scanProcessMemory(fresh.server.child.pid!, new Map([...controls, ...secrets]));
    expect(result.unreadable.map((m) => m.name).filter((name) => !name.startsWith('[vvar'))).toEqual([]);
    const found = new Set(result.hits.map((h) => h.needle));
    for (const name of controls.keys()) expect(found, `control "${name}" not found in ${result.bytesScanned} bytes`).toContain(name);
    expect(describeHits(result.hits.filter((h) => secrets.has(h.needle)))).toBe('');
  }

  async function clusterId(): Promise<Buffer> {
    return Buffer.from((await call(base, 'GET', 'sys/seal-status')).body.cluster_id);
  }

  beforeAll(async () => {
    fresh = await startServerProcess();
    base = fresh.server.url;
  });
  afterAll(async () => {
    await fresh?.server.kill();
  });

  it('after init and unseal: no root key, term key or raw share', async () => {
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    shares = init.body.keys;
    rootToken = init.body.root_token;
    for (const key of shares.slice(0, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
    rootKey = combine(shares.slice(2, 5).map((s) => Buffer.from(s, 'hex')));
    terms = termKeysInClear(fresh.token, fresh.dir, rootKey);
    expect(terms).toHaveLength(1);
    storedCluster = storedEntry(fresh.dir, 'core/cluster');
    const id = await clusterId();
    // The term key is the real one: it opens what init stored under term 1.
    expect(openBarrierValue(terms[0]!, 'core/cluster', storedCluster).includes(id)).toBe(true);
    expectNoSecretIn(new Map([['stored core/cluster', storedCluster], ['cluster_id', id]]));
  });

  it('after KV writes, a rotate and a rekey: neither root key, no term key, no raw share', async () => {
    for (let i = 0; i < 5; i++) expect((await call(base, 'PUT', `secret/k${i}`, { token: rootToken, body: { v: `value ${i}` } })).status).toBe(204);
    expect((await call(base, 'PUT', 'sys/rotate', { token: rootToken })).status).toBe(204);
    const start = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    let reply;
    for (const key of shares.slice(1, 4)) reply = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: start.body.nonce } });
    expect(reply!.body.complete).toBe(true);
    newShares = reply!.body.keys;
    // The switch to the new root key follows the reply; the seal status answers once it is done.
    expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ t: 3, n: 5, sealed: false });
    newRootKey = combine(newShares.slice(0, 3).map((s) => Buffer.from(s, 'hex')));
    expect(newRootKey.equals(rootKey)).toBe(false);
    terms = termKeysInClear(fresh.token, fresh.dir, newRootKey);
    expect(terms).toHaveLength(2);
    expectNoSecretIn(new Map([['stored core/cluster', storedCluster], ['cluster_id', await clusterId()]]));
  });

  it('after seal: none of them', async () => {
    expect((await call(base, 'PUT', 'sys/seal', { token: rootToken })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed).toBe(true);
    expectNoSecretIn(new Map([['stored core/cluster', storedCluster]]));
  });
});
