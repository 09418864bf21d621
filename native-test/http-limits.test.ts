import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService } from '../src/service.js';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

const LIMITS = { readHeaderTimeoutMs: 1000, readTimeoutMs: 2000, idleTimeoutMs: 1500, maxConnections: 4 };

/** A raw connection to the listener, and when (ms after it opened) the server closed it and what it had sent. */
function rawConnection(base: string): { socket: Socket; opened: Promise<void>; closed: Promise<{ afterMs: number; received: string }> } {
  const url = new URL(base);
  const socket = connect(Number(url.port), url.hostname);
  const start = Date.now();
  let received = '';
  socket.on('data', (d) => (received += d.toString()));
  socket.on('error', () => undefined);
  return {
    socket,
    opened: new Promise((resolve) => socket.once('connect', () => resolve())),
    closed: new Promise((resolve) => socket.once('close', () => resolve({ afterMs: Date.now() - start, received }))),
  };
}

/** Writes `chunk` every `everyMs` until the socket closes. */
function dribble(socket: Socket, chunk: string, everyMs: number): void {
  const timer = setInterval(() => (socket.writable ? socket.write(chunk) : clearInterval(timer)), everyMs);
  socket.once('close', () => clearInterval(timer));
}

describe('listener limits: slow and idle clients, and too many of them, cannot hold the listener', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  beforeAll(async () => {
    kw = await startInProcess('file', { listener: { address: '127.0.0.1:0', tlsDisable: true, limits: LIMITS } });
    base = kw.service.url;
    ({ root } = await initAndUnseal(base, 1, 1));
  });
  afterAll(() => kw.service.close());

  it('closes a connection whose headers never end, after http_read_header_timeout', async () => {
    const c = rawConnection(base);
    await c.opened;
    c.socket.write('PUT /v1/sys/unseal HTTP/1.1\r\nHost: kw\r\n');
    dribble(c.socket, 'X-Slow: 1\r\n', 200);
    const { afterMs, received } = await c.closed;
    expect(afterMs).toBeGreaterThanOrEqual(LIMITS.readHeaderTimeoutMs - 100);
    expect(afterMs).toBeLessThan(LIMITS.readHeaderTimeoutMs + 2000);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes an unauthenticated unseal whose body arrives a byte at a time, after http_read_timeout', async () => {
    const c = rawConnection(base);
    await c.opened;
    c.socket.write('PUT /v1/sys/unseal HTTP/1.1\r\nHost: kw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    dribble(c.socket, ' ', 200);
    const { afterMs, received } = await c.closed;
    expect(afterMs).toBeGreaterThanOrEqual(LIMITS.readTimeoutMs - 100);
    expect(afterMs).toBeLessThan(LIMITS.readTimeoutMs + 2000);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
  });

  it('closes a kept-alive connection left idle past http_idle_timeout', async () => {
    const c = rawConnection(base);
    await c.opened;
    c.socket.write('GET /v1/sys/health HTTP/1.1\r\nHost: kw\r\n\r\n');
    const { afterMs, received } = await c.closed;
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(afterMs).toBeGreaterThanOrEqual(LIMITS.idleTimeoutMs - 100);
    expect(afterMs).toBeLessThan(LIMITS.idleTimeoutMs + 2000);
  });

  it('refuses connections past max_connections, and takes them again once others close', async () => {
    const held = Array.from({ length: LIMITS.maxConnections }, () => rawConnection(base));
    await Promise.all(held.map((c) => c.opened));
    // Keep them busy with headers that are never finished (but not long enough to time out).
    for (const c of held) c.socket.write('GET /v1/sys/health HTTP/1.1\r\n');
    await sleep(100);
    const extra = rawConnection(base);
    const { afterMs, received } = await extra.closed;
    expect(afterMs).toBeLessThan(500);
    expect(received).toBe('');
    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    await sleep(50);
    expect((await call(base, 'GET', 'sys/health')).status).toBe(200);
  });

  it('takes a parameter as long as the longest name a store allows (a 128-character policy name)', async () => {
    const name = 'p'.repeat(128);
    expect((await call(base, 'PUT', `sys/policy/${name}`, { token: root, body: { policy: 'path "secret/*" { capabilities = ["read"] }' } })).status).toBe(204);
    expect((await call(base, 'GET', `sys/policies/acl/${name}`, { token: root })).body.data.name).toBe(name);
  });

  it('warns at startup when TLS is disabled on an address other hosts can reach, and not on loopback', async () => {
    for (const [address, warns] of [
      ['0.0.0.0:0', true],
      ['127.0.0.1:0', false],
    ] as const) {
      const lines: Array<{ level: number; msg: string }> = [];
      const sink = new Writable({
        write(chunk, _enc, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
          done();
        },
      });
      // A second service on the same token, with storage of its own.
      const other = await startService({ ...kw.config, storage: { type: 'inmem' }, listener: { address, tlsDisable: true } }, pino({ level: 'warn' }, sink));
      await other.close();
      const warning = lines.find((l) => /tls_disable = true on an address other hosts can reach/.test(l.msg));
      expect(warning !== undefined, `${address}: ${JSON.stringify(lines)}`).toBe(warns);
      if (warns) expect(warning!.level).toBe(40);
    }
  });
});
