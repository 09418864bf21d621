import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pgClient from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startTestCluster, type TestCluster } from './support/cluster.js';
import { freePort, runCli } from './support/process.js';
import { type PgCluster, pgStart, pgStop, startCluster as startPg } from './support/postgres.js';
import { call, type Reply } from './support/service.js';

// Three keyward processes, one PostgreSQL, one SoftHSM2 token directory. The lease TTL is short so
// failovers fit in a test; production defaults to 15 s.
const TTL_MS = 3000;

let cluster: TestCluster | undefined;
let pg: PgCluster | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  cluster = undefined;
  if (pg) pgStop(pg);
  pg = undefined;
});

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Index of the node that says it is active, once exactly one of the running nodes does. */
async function activeNode(c: TestCluster, among = c.nodes.map((_, i) => i), timeoutMs = TTL_MS * 3): Promise<number> {
  return waitFor(
    'one active node',
    async () => {
      const selves = await Promise.all(among.map(async (i) => ((await call(c.nodes[i]!.url, 'GET', 'sys/leader')).body.is_self ? i : -1)));
      const active = selves.filter((i) => i >= 0);
      return active.length === 1 ? active[0] : undefined;
    },
    timeoutMs,
  );
}

async function initCluster(c: TestCluster, shares = 3, threshold = 2): Promise<{ keys: string[]; root: string }> {
  const init = await call(c.nodes[0]!.url, 'PUT', 'sys/init', { body: { secret_shares: shares, secret_threshold: threshold } });
  expect(init.status).toBe(200);
  const keys = init.body.keys as string[];
  for (let i = 0; i < c.nodes.length; i++) await c.unseal(i, keys.slice(0, threshold));
  return { keys, root: init.body.root_token };
}

describe('HA: three nodes on PostgreSQL', () => {
  it('elects one active node that every node names; standbys serve KV reads themselves and pass everything else on', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 3, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const leaders = await Promise.all(c.nodes.map((n) => call(n.url, 'GET', 'sys/leader')));
    expect(new Set(leaders.map((l) => l.body.leader_address))).toEqual(new Set([c.nodes[active]!.url]));
    expect(leaders.map((l) => l.body.is_self)).toEqual(c.nodes.map((_, i) => i === active));
    expect(leaders.every((l) => l.body.ha_enabled)).toBe(true);

    for (const [i, n] of c.nodes.entries()) {
      const health = await call(n.url, 'GET', 'sys/health');
      expect(health.status).toBe(i === active ? 200 : 429);
      expect(health.body.standby).toBe(i !== active);
      expect((await call(n.url, 'GET', 'sys/health?standbyok=true')).status).toBe(200);
      expect((await call(n.url, 'GET', 'sys/health?standbycode=299')).status).toBe(i === active ? 200 : 299);
    }

    // A write sent to each node is made by the active node; the read is served by the node asked.
    for (const [i, n] of c.nodes.entries()) {
      const w = await call(n.url, 'PUT', `secret/from-${i}`, { token: root, body: { v: `${i}` } });
      expect(w.status).toBe(204);
      expect(w.node).toBe(c.nodes[active]!.id);
      for (const reader of c.nodes) {
        const r = await call(reader.url, 'GET', `secret/from-${i}`, { token: root });
        expect(r.status).toBe(200);
        expect(r.body.data).toEqual({ v: `${i}` });
        expect(r.node).toBe(reader.id);
      }
    }
    const standby = c.nodes.find((_, i) => i !== active)!;
    const list = await call(standby.url, 'GET', 'secret?list=true', { token: root });
    expect(list.body.data.keys).toEqual(['from-0', 'from-1', 'from-2']);
    expect(list.node).toBe(standby.id);
    // Token and policy changes made through a standby take effect on every node.
    await call(standby.url, 'PUT', 'sys/policy/reader', { token: root, body: { policy: 'path "secret/*" { capabilities = ["read"] }' } });
    const child = await call(standby.url, 'POST', 'auth/token/create', { token: root, body: { policies: ['reader'] } });
    expect(child.status).toBe(200);
    const childToken = child.body.auth.client_token as string;
    expect((await call(standby.url, 'GET', 'secret/from-0', { token: childToken })).status).toBe(200);
    expect((await call(standby.url, 'PUT', 'auth/token/revoke-self', { token: childToken })).status).toBe(204);
    expect((await call(standby.url, 'GET', 'secret/from-0', { token: childToken })).status).toBe(403);
    // A use-limited token spent through every node at once: its uses are counted on the active node, exactly.
    const limited = await call(standby.url, 'POST', 'auth/token/create', { token: root, body: { policies: ['reader'], num_uses: 4 } });
    const spent = await Promise.all(Array.from({ length: 15 }, async (_, i) => (await call(c.nodes[i % 3]!.url, 'GET', 'secret/from-0', { token: limited.body.auth.client_token })).status));
    expect(spent.filter((s) => s === 200)).toHaveLength(4);
    expect(spent.filter((s) => s === 403)).toHaveLength(11);

    // The CLI's status shows the HA role; step-down (sent to a standby, so forwarded) hands the lease to another node.
    const env = { KEYWARD_ADDR: standby.url, KEYWARD_TOKEN: root };
    const status = await runCli(['status'], env);
    expect(status.stdout).toMatch(/HA Enabled\s+true/);
    expect(status.stdout).toMatch(/HA Mode\s+standby/);
    expect(status.stdout).toContain(`Active Node Address    ${c.nodes[active]!.url}`);
    const stepDown = await runCli(['operator', 'step-down'], env);
    expect(stepDown.code, stepDown.stderr).toBe(0);
    const next = await activeNode(c);
    expect(next).not.toBe(active);
    expect((await call(c.nodes[next]!.url, 'GET', 'secret/from-1', { token: root })).body.data).toEqual({ v: '1' });
  });

  it('transit on every node: standbys decrypt, sign, verify and HMAC with the keys they read; encryptions go to the active node; a rotation is seen at once', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 3, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const standbys = c.nodes.filter((_, i) => i !== active);
    const post = (url: string, path: string, body: unknown = {}) => call(url, 'POST', `transit/${path}`, { token: root, body });
    expect((await call(c.nodes[active]!.url, 'POST', 'sys/mounts/transit', { token: root, body: { type: 'transit' } })).status).toBe(204);
    expect((await post(c.nodes[active]!.url, 'keys/app')).status).toBe(200);
    expect((await post(c.nodes[active]!.url, 'keys/signer', { type: 'ecdsa-p256' })).status).toBe(200);
    const plaintext = Buffer.from('across the cluster').toString('base64');
    for (const s of standbys) {
      const enc = await post(s.url, 'encrypt/app', { plaintext });
      expect(enc.status).toBe(200);
      expect(enc.node).toBe(c.nodes[active]!.id);
      for (const reader of c.nodes) {
        const dec = await post(reader.url, 'decrypt/app', { ciphertext: enc.body.data.ciphertext });
        expect(dec.body.data.plaintext).toBe(plaintext);
        expect(dec.node).toBe(reader.id);
      }
      const sig = await post(s.url, 'sign/signer', { input: plaintext });
      expect(sig.node).toBe(s.id);
      for (const verifier of c.nodes) expect((await post(verifier.url, 'verify/signer', { input: plaintext, signature: sig.body.data.signature })).body.data.valid).toBe(true);
      const mac = await post(s.url, 'hmac/app', { input: plaintext });
      expect(mac.node).toBe(s.id);
      expect((await post(c.nodes[active]!.url, 'verify/app', { input: plaintext, hmac: mac.body.data.hmac })).body.data.valid).toBe(true);
    }
    // A rotation made through a standby (forwarded) is used by every node's next request.
    expect((await post(standbys[0]!.url, 'keys/app/rotate')).status).toBe(200);
    const v2 = await post(c.nodes[active]!.url, 'encrypt/app', { plaintext });
    expect(v2.body.data.ciphertext).toMatch(/^vault:v2:/);
    for (const s of standbys) expect((await post(s.url, 'decrypt/app', { ciphertext: v2.body.data.ciphertext })).body.data.plaintext).toBe(plaintext);
    const read = await call(standbys[1]!.url, 'GET', 'transit/keys/app', { token: root });
    expect(read.body.data.latest_version).toBe(2);
    expect(read.node).toBe(standbys[1]!.id);
  });

  it("judges a forwarded request by its client's address, which the standby vouches for, and refuses a claimed one", async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 2, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = c.nodes[await activeNode(c)]!;
    const standby = c.nodes.find((n) => n !== active)!;
    // Every 127/8 address is this machine's: the client speaks from 127.0.0.2, the standby from 127.0.0.1.
    const send = (base: string, method: string, path: string, opts: { token?: string; body?: unknown } = {}) =>
      new Promise<Reply>((resolve, reject) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (opts.token) headers['x-vault-token'] = opts.token;
        const req = httpRequest(`${base}/v1/${path}`, { method, headers, localAddress: '127.0.0.2' }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined, node: res.headers['x-keyward-node'] as string }));
        });
        req.on('error', reject).end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
      });
    expect((await call(active.url, 'POST', 'sys/auth/userpass', { token: root, body: { type: 'userpass' } })).status).toBe(204);
    await call(active.url, 'POST', 'auth/userpass/users/near', { token: root, body: { password: 'pw-near', token_policies: 'root-writer', token_bound_cidrs: '127.0.0.2/32' } });
    await call(active.url, 'PUT', 'sys/policy/root-writer', { token: root, body: { policy: 'path "secret/*" { capabilities = ["create", "update", "read"] }' } });
    // The login and the write go through the standby to the active node, which sees the standby's connection.
    const login = await send(standby.url, 'POST', 'auth/userpass/login/near', { body: { password: 'pw-near' } });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    expect(login.node).toBe(active.id);
    const token = login.body.auth.client_token as string;
    const write = await send(standby.url, 'PUT', 'secret/near', { token, body: { v: 1 } });
    expect(write.status, JSON.stringify(write.body)).toBe(204);
    expect(write.node).toBe(active.id);
    // From the standby's own address (127.0.0.1), the bound token and the login are refused.
    expect((await call(standby.url, 'PUT', 'secret/near', { token, body: { v: 2 } })).status).toBe(403);
    expect((await call(standby.url, 'POST', 'auth/userpass/login/near', { body: { password: 'pw-near' } })).status).toBe(403);
    // A client cannot claim an address: a forwarded-client header without the cluster's MAC is refused.
    const claimed = Buffer.from(JSON.stringify({ address: '127.0.0.2', certificates: [], at: Date.now() })).toString('base64');
    const forged = await call(active.url, 'PUT', 'secret/near', {
      token,
      body: { v: 3 },
      headers: { 'x-keyward-forwarded-client': claimed, 'x-keyward-forwarded-client-mac': '0'.repeat(64) },
    });
    expect(forged.status).toBe(403);
    expect(forged.body.errors[0]).toMatch(/does not verify/);
    expect((await call(active.url, 'GET', 'secret/near', { token: root })).body.data).toEqual({ v: 1 });
  });

  it('answers 307 to the active node when standbys are set to redirect', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 2, lockTtl: '3s', extraConfig: 'standby_requests = "redirect"' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const standby = c.nodes[1 - active]!;
    const res = await fetch(`${standby.url}/v1/secret/x`, { method: 'PUT', headers: { 'X-Vault-Token': root }, body: '{"v":1}', redirect: 'manual' });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe(`${c.nodes[active]!.url}/v1/secret/x`);
    expect(res.headers.get('x-keyward-node')).toBe(standby.id);
    expect((await call(c.nodes[active]!.url, 'GET', 'secret/x', { token: root })).status).toBe(404);
  });

  it('follows a rotation on every standby within a second, and a standby takes over within the lease TTL after kill -9', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 3, lockTtl: '3s', extraConfig: 'encryption_count_persist_interval = "200ms"' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const a = c.nodes[active]!;
    const standbys = c.nodes.filter((_, i) => i !== active);
    expect((await call(a.url, 'PUT', 'secret/term1', { token: root, body: { v: 'old' } })).status).toBe(204);

    expect((await call(a.url, 'PUT', 'sys/rotate', { token: root })).status).toBe(204);
    expect((await call(a.url, 'PUT', 'secret/term2', { token: root, body: { v: 'new' } })).status).toBe(204);
    const written = Date.now();
    for (const s of standbys) {
      await waitFor(
        `${s.id} to serve the term-2 value itself`,
        async () => {
          const r = await call(s.url, 'GET', 'secret/term2', { token: root });
          return r.status === 200 && r.node === s.id && r.body.data.v === 'new' ? true : undefined;
        },
        1000,
        10,
      );
    }
    const pickup = Date.now() - written;
    expect(pickup).toBeLessThan(1000);
    expect((await call(standbys[0]!.url, 'GET', 'sys/key-status', { token: root })).body.term).toBe(2);

    for (let i = 0; i < 10; i++) await call(a.url, 'PUT', `secret/count${i}`, { token: root, body: { i } });
    const counted = (await call(a.url, 'GET', 'sys/key-status', { token: root })).body.encryptions as number;
    await sleep(500);

    await a.server.kill();
    const killed = Date.now();
    const survivors = c.nodes.map((_, i) => i).filter((i) => i !== active);
    const next = await activeNode(c, survivors, TTL_MS + 2000);
    const takeover = Date.now() - killed;
    expect(takeover).toBeLessThanOrEqual(TTL_MS + 300);
    for (const i of survivors) {
      for (const [path, v] of [
        ['secret/term1', 'old'],
        ['secret/term2', 'new'],
      ]) {
        const r = await call(c.nodes[i]!.url, 'GET', path!, { token: root });
        expect(r.body.data).toEqual({ v });
      }
    }
    const w = await call(c.nodes[next]!.url, 'PUT', 'secret/after', { token: root, body: { v: 'x' } });
    expect(w.status).toBe(204);
    // The new active node continues from the persisted encryption counts (plus its own write).
    expect((await call(c.nodes[next]!.url, 'GET', 'sys/key-status', { token: root })).body).toMatchObject({ term: 2, encryptions: counted + 1 });
    console.log(`rotate pickup on both standbys: ${pickup} ms; takeover after kill -9: ${takeover} ms (TTL ${TTL_MS} ms)`);
  });

  it('catches up a standby paused past the upgrade grace period: it learns the missed terms from the keyring', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 2, lockTtl: '3s', upgradeGrace: '1s', pollInterval: '1s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const a = c.nodes[active]!;
    const standby = c.nodes[1 - active]!;
    standby.server.child.kill('SIGSTOP');
    await call(a.url, 'PUT', 'sys/rotate', { token: root });
    await call(a.url, 'PUT', 'sys/rotate', { token: root });
    await call(a.url, 'PUT', 'secret/term3', { token: root, body: { v: 3 } });
    // The active node drops upgrade entries past the grace period at its renewals (every TTL/3).
    const db = new pgClient.Client({ connectionString: inject('pgUrl') });
    await db.connect();
    try {
      await waitFor(
        'the upgrade entries to expire',
        async () => ((await db.query(`SELECT path FROM ${c.table} WHERE path LIKE 'core/upgrade/%'`)).rowCount === 0 ? true : undefined),
        5000,
        100,
      );
    } finally {
      await db.end();
    }
    standby.server.child.kill('SIGCONT');
    await waitFor(
      'the resumed standby to serve the term-3 value itself',
      async () => {
        const r = await call(standby.url, 'GET', 'secret/term3', { token: root });
        return r.status === 200 && r.node === standby.id ? true : undefined;
      },
      4000,
    );
  });

  it('a rekey whose switch a crash cut short after its reply: every node reports it, the node unsealed with the new shares finishes it once active, the others follow', async () => {
    const crashFile = join(tmpdir(), `kw-crash-after-reply-${randomBytes(4).toString('hex')}`);
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 2, lockTtl: '3s', env: { KEYWARD_TEST_CRASH_AFTER_REPLY_FILE: crashFile } });
    const c = cluster;
    const { keys: oldKeys, root } = await initCluster(c);
    const active = await activeNode(c);
    const other = 1 - active;
    await call(c.nodes[active]!.url, 'PUT', 'secret/kept', { token: root, body: { v: 'kept' } });

    // The active node hands out the new shares, then dies before switching to them.
    await writeFile(crashFile, '');
    const start = await call(c.nodes[active]!.url, 'PUT', 'sys/rekey/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    let done: Reply | undefined;
    for (const key of oldKeys.slice(0, 2)) done = await call(c.nodes[active]!.url, 'PUT', 'sys/rekey/update', { body: { key, nonce: start.body.nonce } });
    expect(done!.body.complete).toBe(true);
    const newKeys = done!.body.keys as string[];
    await c.nodes[active]!.server.exited;
    await rm(crashFile);

    // The node that takes over reports the rekey awaiting completion, with its threshold.
    expect(await activeNode(c, [other])).toBe(other);
    expect((await call(c.nodes[other]!.url, 'GET', 'sys/seal-status')).body).toMatchObject({ t: 2, n: 3, rekey_pending: { nonce: start.body.nonce, t: 3, n: 5 } });
    expect((await call(c.nodes[other]!.url, 'GET', 'sys/rekey/init')).body).toMatchObject({ completion_pending: true, t: 3, n: 5 });

    // The crashed node comes back and the new shares unseal it; once it is active it finishes the switch.
    await c.start(active);
    await c.unseal(active, newKeys.slice(2, 5));
    expect((await call(c.nodes[active]!.url, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
    expect((await call(c.nodes[other]!.url, 'PUT', 'sys/step-down', { token: root })).status).toBe(204);
    expect(await activeNode(c)).toBe(active);
    for (const n of c.nodes) {
      await waitFor(
        `${n.id} to show 3 of 5 and no rekey pending`,
        async () => {
          const st = (await call(n.url, 'GET', 'sys/seal-status')).body;
          return st.t === 3 && st.n === 5 && st.rekey_pending === undefined ? true : undefined;
        },
        5000,
      );
      expect((await call(n.url, 'GET', 'secret/kept', { token: root })).body.data).toEqual({ v: 'kept' });
    }
    // Only the new shares open it now.
    await c.nodes[other]!.server.kill();
    await c.start(other);
    let refused: Reply | undefined;
    for (const key of oldKeys) refused = await call(c.nodes[other]!.url, 'PUT', 'sys/unseal', { body: { key } });
    expect(refused!.status).toBe(400);
    await c.unseal(other, newKeys.slice(0, 3));
    expect((await call(c.nodes[other]!.url, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
  });

  it('follows a rekey: standbys show the new t/n at once, the new shares unseal after failover, a rekey cut short by failover is reported cancelled', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 3, lockTtl: '3s' });
    const c = cluster;
    const { keys: oldKeys, root } = await initCluster(c);
    const active = await activeNode(c);
    const standbys = c.nodes.filter((_, i) => i !== active);
    await call(c.nodes[active]!.url, 'PUT', 'secret/kept', { token: root, body: { v: 'kept' } });

    // Driven through a standby: every rekey call is forwarded to the active node.
    const start = await call(standbys[0]!.url, 'PUT', 'sys/rekey/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    expect(start.status).toBe(200);
    let done: Reply | undefined;
    for (const key of oldKeys.slice(0, 2)) done = await call(standbys[0]!.url, 'PUT', 'sys/rekey/update', { body: { key, nonce: start.body.nonce } });
    expect(done!.body.complete).toBe(true);
    const newKeys = done!.body.keys as string[];
    const switched = Date.now();
    for (const s of standbys) {
      await waitFor(
        `${s.id} to show 3 of 5`,
        async () => {
          const st = (await call(s.url, 'GET', 'sys/seal-status')).body;
          return st.t === 3 && st.n === 5 ? true : undefined;
        },
        1000,
        10,
      );
    }
    expect(Date.now() - switched).toBeLessThan(1000);

    await c.nodes[active]!.server.kill();
    const survivors = c.nodes.map((_, i) => i).filter((i) => i !== active);
    const next = await activeNode(c, survivors);
    // The new active node rebuilt its keyring under the new root key it followed.
    expect((await call(c.nodes[next]!.url, 'PUT', 'secret/after-rekey', { token: root, body: { v: 'y' } })).status).toBe(204);
    expect((await call(c.nodes[next]!.url, 'GET', 'secret/kept', { token: root })).body.data).toEqual({ v: 'kept' });

    // The killed node comes back sealed: the old shares are refused, the new ones unseal it.
    await c.start(active);
    const restarted = c.nodes[active]!;
    let refused: Reply | undefined;
    for (const key of oldKeys) refused = await call(restarted.url, 'PUT', 'sys/unseal', { body: { key } });
    expect(refused!.status).toBe(400);
    expect(refused!.body.errors[0]).toMatch(/do not rebuild this cluster's root key/);
    await c.unseal(active, newKeys.slice(0, 3));
    expect((await call(restarted.url, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
    expect((await call(restarted.url, 'GET', 'secret/after-rekey', { token: root })).body.data).toEqual({ v: 'y' });

    // A rekey in progress when its active node dies is reported cancelled by the next one.
    const second = await call(c.nodes[next]!.url, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    await call(c.nodes[next]!.url, 'PUT', 'sys/rekey/update', { body: { key: newKeys[0], nonce: second.body.nonce } });
    await c.nodes[next]!.server.kill();
    const third = await activeNode(
      c,
      c.nodes.map((_, i) => i).filter((i) => i !== next),
    );
    const status = await call(c.nodes[third]!.url, 'GET', 'sys/rekey/init');
    expect(status.body.started).toBe(false);
    const late = await call(c.nodes[third]!.url, 'PUT', 'sys/rekey/update', { body: { key: newKeys[1], nonce: second.body.nonce } });
    expect(late.status).toBe(400);
    expect(late.body.errors[0]).toMatch(/was cancelled: the active node running it failed over/);
    expect((await call(c.nodes[third]!.url, 'GET', 'sys/seal-status')).body).toMatchObject({ t: 3, n: 5 });
  });

  it('loses no acknowledged write when the active node is killed under load, and never has two nodes acknowledge', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 3, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const entry = c.nodes[(active + 1) % 3]!;
    const acks: Array<{ key: string; node: string; at: number }> = [];
    let failures = 0;
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `load/w${w}-${i}`;
        const r = await call(entry.url, 'PUT', `secret/${key}`, { token: root, body: { v: key } }).catch(() => undefined);
        if (r?.status === 204) acks.push({ key, node: r.node!, at: Date.now() });
        else {
          failures++;
          await sleep(20);
        }
      }
    });
    await sleep(1500);
    const before = acks.length;
    await c.nodes[active]!.server.kill();
    const killed = Date.now();
    const resumed = await waitFor('a write acknowledged after the kill', async () => acks.find((a) => a.at > killed && a.node !== c.nodes[active]!.id), TTL_MS * 3);
    await sleep(1000);
    stop = true;
    await Promise.all(writers);

    expect(before).toBeGreaterThan(20);
    expect(resumed.at - killed).toBeLessThanOrEqual(TTL_MS + 1000);
    // Acknowledgements come from the old active node, then only from the new one.
    const nodes = acks.map((a) => a.node);
    const switchAt = nodes.findIndex((n) => n !== c.nodes[active]!.id);
    expect(new Set(nodes.slice(0, switchAt))).toEqual(new Set([c.nodes[active]!.id]));
    expect(new Set(nodes.slice(switchAt)).size).toBe(1);
    for (const a of acks) {
      const r = await call(entry.url, 'GET', `secret/${a.key}`, { token: root });
      expect(r.body?.data, a.key).toEqual({ v: a.key });
    }
    console.log(`failover under load: ${acks.length} writes acknowledged, ${failures} failed during the failover, first write on the new active ${resumed.at - killed} ms after kill -9`);
  });

  it('wakes a paused active node as a standby: its pending write is made by the new active node or refused, never acknowledged by itself', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 3, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const old = c.nodes[active]!;
    old.server.child.kill('SIGSTOP');
    const others = c.nodes.map((_, i) => i).filter((i) => i !== active);
    const next = await activeNode(c, others);
    // Sent while the old node is frozen: it reads the request only after SIGCONT, still believing it is active.
    const pending = call(old.url, 'PUT', 'secret/fenced', { token: root, body: { v: 'late' } });
    await sleep(100);
    old.server.child.kill('SIGCONT');
    const reply = await pending;
    if (reply.status === 204) expect(reply.node).toBe(c.nodes[next]!.id);
    else expect(reply.status).toBe(503);
    await waitFor('the old node to report the new leader', async () => ((await call(old.url, 'GET', 'sys/leader')).body.is_self === false ? true : undefined), 5000);
    expect(await activeNode(c)).toBe(next);
  });

  it('fences an active node that missed losing its lease: PostgreSQL refuses its write, and it steps down at its next check', async () => {
    cluster = await startTestCluster({ pgUrl: inject('pgUrl'), size: 2, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const old = c.nodes[active]!;
    const next = c.nodes[1 - active]!;
    // The old node stops renewing and checking its lease, so it still believes it is active when the other takes over.
    await writeFile(old.freezeLeaseFile, '');
    await waitFor(`${next.id} to take the lease`, async () => ((await call(next.url, 'GET', 'sys/leader')).body.is_self ? true : undefined), TTL_MS * 3);
    expect((await call(old.url, 'GET', 'sys/leader')).body.is_self).toBe(true);

    const refused = await call(old.url, 'PUT', 'secret/fenced', { token: root, body: { v: 'late' } });
    expect(refused.status).toBe(503);
    expect(refused.node).toBe(old.id);
    expect(refused.body.errors).toEqual(['this node no longer holds the leader lease; the write was not made; retry']);
    // Refused by the fence, not by a step-down: the old node still believes it is active.
    expect((await call(old.url, 'GET', 'sys/leader')).body.is_self).toBe(true);
    expect((await call(next.url, 'GET', 'secret/fenced', { token: root })).status).toBe(404);

    await rm(old.freezeLeaseFile);
    await waitFor(
      'the old node to step down and name the new leader',
      async () => {
        const leader = (await call(old.url, 'GET', 'sys/leader')).body;
        return !leader.is_self && leader.leader_address === next.url ? true : undefined;
      },
      TTL_MS,
    );
    // As a standby it passes the same write on to the new active node.
    const retried = await call(old.url, 'PUT', 'secret/fenced', { token: root, body: { v: 'late' } });
    expect(retried.status).toBe(204);
    expect(retried.node).toBe(next.id);
    expect((await call(next.url, 'GET', 'secret/fenced', { token: root })).body.data).toEqual({ v: 'late' });
  });

  it('answers 503 while PostgreSQL is down and loses nothing acknowledged across its restart', async () => {
    pg = startPg(await freePort());
    cluster = await startTestCluster({ pgUrl: pg.url, size: 2, lockTtl: '3s' });
    const c = cluster;
    const { root } = await initCluster(c);
    const active = await activeNode(c);
    const acks: string[] = [];
    const statuses = new Map<number, number>();
    let stop = false;
    const writers = Array.from({ length: 3 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `pg/w${w}-${i}`;
        const r = await call(c.nodes[active]!.url, 'PUT', `secret/${key}`, { token: root, body: { v: key } }).catch(() => undefined);
        const status = r?.status ?? 0;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 204) acks.push(key);
        else await sleep(50);
      }
    });
    await sleep(1000);
    pgStop(pg);
    await sleep(4000);
    const acksWhileDown = acks.length;
    pgStart(pg);
    const restarted = Date.now();
    await waitFor('writes to succeed again', async () => (acks.length > acksWhileDown + 10 ? true : undefined), 20_000, 100);
    const recovery = Date.now() - restarted;
    stop = true;
    await Promise.all(writers);

    expect([...statuses.keys()].sort()).toEqual([204, 503]);
    const reader = c.nodes[await activeNode(c)]!;
    for (const key of acks) expect((await call(reader.url, 'GET', `secret/${key}`, { token: root })).body?.data, key).toEqual({ v: key });
    console.log(`PostgreSQL restart: ${acks.length} acknowledged, statuses ${JSON.stringify(Object.fromEntries(statuses))}, writes back ${recovery} ms after restart`);
  });
});
