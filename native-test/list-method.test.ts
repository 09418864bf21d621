import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LISTENER_LIMITS } from '../src/config/config.js';
import { ListMethodRewriter } from '../src/http/list-method.js';
import { type Service, startService } from '../src/service.js';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

/** Debian's interpreter, which Debian's python3-hvac 0.11 belongs to. */
const PYTHON = '/usr/bin/python3';

interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: any;
}

/** A raw HTTP/1.1 connection: bytes go out exactly as written, replies are read off one by one. */
class RawConnection {
  private data = Buffer.alloc(0);
  private readonly replies: RawReply[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
      this.parse();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static tcp(url: string): Promise<RawConnection> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ host: hostname, port: Number(port) }, () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  static tls(url: string, ca: string): Promise<RawConnection> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: hostname, port: Number(port), ca }, () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  write(bytes: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  /** Writes `bytes` one at a time, each in its own segment, so the server reads them apart. */
  async writeByteByByte(bytes: string): Promise<void> {
    for (const b of Buffer.from(bytes, 'latin1')) {
      await this.write(Buffer.from([b]));
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** The next reply, or undefined when the server closed the connection first. */
  async next(): Promise<RawReply | undefined> {
    while (this.replies.length === 0 && !this.closed) await new Promise<void>((r) => (this.wake = r));
    return this.replies.shift();
  }

  async nextReplies(n: number): Promise<RawReply[]> {
    const out: RawReply[] = [];
    for (let k = 0; k < n; k++) {
      const r = await this.next();
      if (!r) throw new Error(`the server closed the connection after ${k} of ${n} replies`);
      out.push(r);
    }
    return out;
  }

  end(): void {
    this.socket.destroy();
  }

  private parse(): void {
    for (;;) {
      const headEnd = this.data.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const [statusLine, ...lines] = this.data.subarray(0, headEnd).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (headers['transfer-encoding']) throw new Error('chunked replies are not expected here');
      if (this.data.length < headEnd + 4 + length) return;
      const text = this.data.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8');
      this.data = this.data.subarray(headEnd + 4 + length);
      this.replies.push({ status: Number(statusLine!.split(' ')[1]), headers, body: text ? JSON.parse(text) : undefined });
      this.wake?.();
    }
  }
}

/** One request's bytes, as a client would write them. */
function request(method: string, target: string, token: string, body?: string): string {
  const length = body === undefined ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\n`;
  return `${method} ${target} HTTP/1.1\r\nHost: keyward\r\nX-Vault-Token: ${token}\r\n${length}\r\n${body ?? ''}`;
}

/** A JSON body whose bytes hold a whole LIST request line. */
const LIST_IN_BODY = JSON.stringify({ note: 'LIST /v1/kv1/ HTTP/1.1\r\n\r\nLIST /v1/kv1/ HTTP/1.1' });

/** http_read_header_timeout of the test server: long enough for a head written a byte at a time. */
const HEADER_TIMEOUT_MS = 2500;

describe('the HTTP LIST method', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  beforeAll(async () => {
    kw = await startInProcess('file', { listener: { address: '127.0.0.1:0', tlsDisable: true, limits: { ...LISTENER_LIMITS, readHeaderTimeoutMs: HEADER_TIMEOUT_MS } } });
    base = kw.service.url;
    root = (await initAndUnseal(base)).root;
    const put = async (path: string, body: unknown) => expect((await call(base, 'PUT', path, { token: root, body })).status).toBeLessThan(300);
    await put('sys/mounts/kv1', { type: 'kv' });
    await put('sys/mounts/kv2', { type: 'kv-v2' });
    await put('sys/mounts/transit', { type: 'transit' });
    for (const p of ['a', 'b', 'dir/c']) await put(`kv1/${p}`, { v: p });
    await put('kv2/data/x', { data: { v: 'x' } });
    await put('transit/keys/k1', {});
    await put('sys/policies/acl/lister', { policy: 'path "kv1/*" {\n  capabilities = ["list"]\n}\n' });
    await put('sys/policies/acl/reader', { policy: 'path "kv1/*" {\n  capabilities = ["read"]\n}\n' });
  });
  afterAll(() => kw.service.close());

  async function tokenWith(policy: string): Promise<string> {
    return (await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: [policy] } })).body.auth.client_token;
  }

  it('lists on every list route, several requests in turn on one kept-alive connection', async () => {
    const conn = await RawConnection.tcp(base);
    const routes = ['kv1/', 'kv2/metadata/', 'sys/policies/acl', 'auth/token/accessors', 'transit/keys'];
    for (const route of routes) {
      await conn.write(request('LIST', `/v1/${route}`, root));
      const reply = (await conn.next())!;
      expect(reply.status, route).toBe(200);
      // The same listing ?list=true gives.
      expect(reply.body.data.keys, route).toEqual((await call(base, 'GET', `${route}?list=true`, { token: root })).body.data.keys);
    }
    expect(conn.closed).toBe(false);
    conn.end();
    const keys = async (route: string) => (await call(base, 'GET', `${route}?list=true`, { token: root })).body.data.keys;
    expect(await keys('kv1/')).toEqual(['a', 'b', 'dir/']);
    expect(await keys('kv2/metadata/')).toEqual(['x']);
    expect(await keys('sys/policies/acl')).toEqual(expect.arrayContaining(['default', 'lister', 'reader', 'root']));
    expect(await keys('transit/keys')).toEqual(['k1']);
  });

  it('needs the list capability, as ?list=true does', async () => {
    const conn = await RawConnection.tcp(base);
    const lister = await tokenWith('lister');
    const reader = await tokenWith('reader');
    await conn.write(request('LIST', '/v1/kv1/', lister) + request('GET', '/v1/kv1/a', lister) + request('LIST', '/v1/kv1/', reader) + request('GET', '/v1/kv1/a', reader));
    const [listed, notRead, notListed, read] = await conn.nextReplies(4);
    expect(listed!.body.data.keys).toEqual(['a', 'b', 'dir/']);
    expect([notRead!.status, notListed!.status, read!.status]).toEqual([403, 403, 200]);
    conn.end();
  });

  it('takes LIST among pipelined requests, and leaves a body holding "LIST /v1/" alone', async () => {
    const conn = await RawConnection.tcp(base);
    await conn.write(
      request('GET', '/v1/kv1/a', root) + request('LIST', '/v1/kv1/', root) + request('PUT', '/v1/kv1/note', root, LIST_IN_BODY) + request('LIST', '/v1/kv1/dir/', root),
    );
    const [get, list, put, listDir] = await conn.nextReplies(4);
    expect(get!.body.data).toEqual({ v: 'a' });
    // Node runs pipelined requests concurrently (replies keep their order): the PUT may be listed.
    expect(list!.body.data.keys).toEqual(expect.arrayContaining(['a', 'b', 'dir/']));
    expect(put!.status).toBe(204);
    expect(listDir!.body.data.keys).toEqual(['c']);
    // A body that is itself a request line reaches the route as it came: the route refuses it as
    // JSON (and fastify closes a connection whose body it could not parse).
    await conn.write(request('PUT', '/v1/kv1/raw', root, 'LIST /v1/kv1/ HTTP/1.1\r\n\r\n') + request('LIST', '/v1/kv1/', root));
    const raw = await conn.next();
    expect(raw!.status).toBe(400);
    expect(raw!.body.errors[0]).toMatch(/failed to parse JSON input: Unexpected token 'L', "LIST \/v1\//);
    expect(await conn.next()).toBeUndefined();
    expect((await call(base, 'GET', 'kv1/note', { token: root })).body.data).toEqual(JSON.parse(LIST_IN_BODY));
  });

  it('leaves a chunked body holding "LIST /v1/" alone', async () => {
    const conn = await RawConnection.tcp(base);
    // The second chunk's data starts with the text of a LIST request line.
    const [first, second] = [LIST_IN_BODY.slice(0, 9), LIST_IN_BODY.slice(9)];
    expect(second.startsWith('LIST /v1/')).toBe(true);
    const chunked = [first, second].map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('') + '0\r\n\r\n';
    const chunkedPut = (key: string) => `PUT /v1/kv1/${key} HTTP/1.1\r\nHost: keyward\r\nX-Vault-Token: ${root}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`;
    // Before the connection's first LIST and after it (when the rewriter follows the chunks).
    await conn.write(chunkedPut('chunked') + request('LIST', '/v1/kv1/dir/', root) + chunkedPut('chunked2') + request('LIST', '/v1/kv1/', root));
    const [put, listDir, put2, list] = await conn.nextReplies(4);
    expect([put!.status, put2!.status]).toEqual([204, 204]);
    expect(listDir!.body.data.keys).toEqual(['c']);
    expect(list!.body.data.keys).toEqual(expect.arrayContaining(['a', 'b', 'dir/']));
    conn.end();
    for (const key of ['chunked', 'chunked2']) expect((await call(base, 'GET', `kv1/${key}`, { token: root })).body.data).toEqual(JSON.parse(LIST_IN_BODY));
  });

  it('takes requests split at every byte, the method included', async () => {
    const conn = await RawConnection.tcp(base);
    await conn.writeByteByByte(
      request('LIST', '/v1/kv1/', root) + request('PUT', '/v1/kv1/split', root, LIST_IN_BODY) + request('GET', '/v1/kv1/split', root) + request('LIST', '/v1/kv2/metadata/', root),
    );
    const [list, put, get, listKv2] = await conn.nextReplies(4);
    expect(list!.body.data.keys).toEqual(expect.arrayContaining(['a', 'b', 'dir/']));
    expect(put!.status).toBe(204);
    expect(get!.body.data).toEqual(JSON.parse(LIST_IN_BODY));
    expect(listKv2!.body.data.keys).toEqual(['x']);
    conn.end();
  });

  it('adds list=true to a query already there, and overrides list=false', async () => {
    const conn = await RawConnection.tcp(base);
    await conn.write(request('LIST', '/v1/kv1/?foo=1', root) + request('LIST', '/v1/kv1/dir/?list=false', root));
    const [withQuery, overridden] = await conn.nextReplies(2);
    expect(withQuery!.body.data.keys).toEqual(expect.arrayContaining(['a', 'b', 'dir/']));
    expect(overridden!.body.data.keys).toEqual(['c']);
    conn.end();
  });

  it('times out a LIST whose head never ends, as any request, on a kept-alive connection', async () => {
    const conn = await RawConnection.tcp(base);
    await conn.write(request('GET', '/v1/kv1/a', root));
    expect((await conn.next())!.status).toBe(200);
    const started = Date.now();
    await conn.write('LIST /v1/kv1/');
    const dribble = setInterval(() => conn.socket.write('a'), 200);
    const reply = await conn.next();
    clearInterval(dribble);
    expect(reply!.status).toBe(408);
    expect(Date.now() - started).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS - 100);
    expect(Date.now() - started).toBeLessThan(HEADER_TIMEOUT_MS + 2000);
    expect(await conn.next()).toBeUndefined();
  });

  it('still answers any other unknown method with 400 and closes the connection', async () => {
    for (const method of ['FOO', 'list', 'LISTS', 'LIS', 'UNLIST', 'PST', 'LINKS']) {
      const conn = await RawConnection.tcp(base);
      await conn.write(request(method, '/v1/kv1/', root) + request('GET', '/v1/kv1/a', root));
      const reply = await conn.next();
      expect(reply?.status, method).toBe(400);
      expect(reply?.body.errors[0], method).toMatch(/^malformed HTTP request: /);
      expect(await conn.next(), method).toBeUndefined();
    }
  });

  it('serves node-vault list() with its default LIST, and hvac 0.11 with LIST and with ?list=True', async () => {
    const vault = nodeVault({ endpoint: base, token: root });
    expect((await vault.list('kv1/')).data.keys).toEqual(expect.arrayContaining(['a', 'b', 'dir/']));
    expect((await vault.list('transit/keys')).data.keys).toEqual(['k1']);
    const script = [
      'import hvac, json, os',
      "c = hvac.Client(url=os.environ['VAULT_ADDR'], token=os.environ['VAULT_TOKEN'])",
      'print(json.dumps({',
      "  'list': c.list('kv1/dir')['data']['keys'],",
      "  'kv1': c.secrets.kv.v1.list_secrets(path='dir', mount_point='kv1')['data']['keys'],",
      "  'kv2': c.secrets.kv.v2.list_secrets(path='', mount_point='kv2')['data']['keys'],",
      "  'transit': c.secrets.transit.list_keys(mount_point='transit')['data']['keys'],",
      '}))',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(PYTHON, ['-c', script], { env: { ...process.env, VAULT_ADDR: base, VAULT_TOKEN: root } }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
    );
    expect(JSON.parse(out)).toEqual({ list: ['c'], kv1: ['c'], kv2: ['x'], transit: ['k1'] });
  });

  describe('over TLS', () => {
    let tls: Service;
    let ca: string;

    beforeAll(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kw-list-tls-'));
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=list-test-ca');
      run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
      await writeFile(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
      run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
      ca = await readFile(join(dir, 'ca.crt'), 'utf8');
      // A second keyward in this process on the same token, with its own storage.
      const listener = { address: '127.0.0.1:0', tlsDisable: false, tlsCertFile: join(dir, 'server.crt'), tlsKeyFile: join(dir, 'server.key') };
      tls = await startService({ ...kw.config, storage: { type: 'inmem' }, listener }, pino({ level: 'silent' }));
    });
    afterAll(() => tls?.close());

    it('takes LIST, pipelined and split, on a TLS connection', async () => {
      const conn = await RawConnection.tls(tls.url, ca);
      await conn.write(request('PUT', '/v1/sys/init', '', JSON.stringify({ secret_shares: 1, secret_threshold: 1 })));
      const init = (await conn.next())!.body;
      await conn.write(request('PUT', '/v1/sys/unseal', '', JSON.stringify({ key: init.keys[0] })));
      expect((await conn.next())!.body.sealed).toBe(false);
      const token = init.root_token;
      await conn.write(request('PUT', '/v1/sys/mounts/kv1', token, '{"type":"kv"}'));
      expect((await conn.next())!.status).toBe(204);
      await conn.write(request('PUT', '/v1/kv1/tls', token, LIST_IN_BODY));
      expect((await conn.next())!.status).toBe(204);
      await conn.writeByteByByte(request('LIST', '/v1/kv1/', token) + request('GET', '/v1/kv1/tls', token));
      await conn.write(request('LIST', '/v1/sys/policies/acl', token) + request('LIST', '/v1/kv1/?list=0', token));
      const [list, get, policies, listAgain] = await conn.nextReplies(4);
      expect(list!.body.data.keys).toEqual(['tls']);
      expect(get!.body.data).toEqual(JSON.parse(LIST_IN_BODY));
      expect(policies!.body.data.keys).toEqual(expect.arrayContaining(['default', 'root']));
      expect(listAgain!.body.data.keys).toEqual(['tls']);
      conn.end();
    });
  });
});

describe('ListMethodRewriter', () => {
  /** What the parser gets for `input` delivered in pieces cut at `cuts`. */
  function rewritten(input: Buffer, cuts: number[]): string {
    const rewriter = new ListMethodRewriter();
    const out: Buffer[] = [];
    let from = 0;
    for (const cut of [...cuts, input.length]) {
      if (cut <= from) continue;
      const chunk = input.subarray(from, cut);
      from = cut;
      const piece = rewriter.rewrite(chunk);
      out.push(...(Buffer.isBuffer(piece) ? [piece] : piece));
    }
    out.push(...rewriter.end());
    return Buffer.concat(out).toString('latin1');
  }

  const body = 'LIST /v1/secret/ HTTP/1.1\r\n\r\n';
  const stream =
    'GET /v1/a HTTP/1.1\r\nHost: x\r\n\r\n' +
    'LIST /v1/secret/?foo=1&list=false#frag HTTP/1.1\r\nHost: x\r\n\r\n' +
    `PUT /v1/secret/b HTTP/1.1\r\ncontent-LENGTH: ${body.length}\r\n\r\n${body}` +
    `PUT /v1/secret/c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\nTrailer: t\r\n\r\n` +
    '\r\nLINK /x HTTP/1.1\r\n\r\nLIST /v1/z HTTP/1.0\r\n\r\nLIS';
  const expected =
    'GET /v1/a HTTP/1.1\r\nHost: x\r\n\r\n' +
    'GET /v1/secret/?foo=1&list=true#frag HTTP/1.1\r\nHost: x\r\n\r\n' +
    `PUT /v1/secret/b HTTP/1.1\r\ncontent-LENGTH: ${body.length}\r\n\r\n${body}` +
    `PUT /v1/secret/c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\nTrailer: t\r\n\r\n` +
    '\r\nLINK /x HTTP/1.1\r\n\r\nGET /v1/z?list=true HTTP/1.0\r\n\r\nLIS';

  it('rewrites request lines only, wherever the stream is cut', () => {
    const input = Buffer.from(stream, 'latin1');
    expect(rewritten(input, [])).toBe(expected);
    expect(rewritten(input, [...input.keys()])).toBe(expected);
    for (let n = 0; n < 500; n++) {
      const cuts = Array.from({ length: 1 + (n % 12) }, () => Math.floor(Math.random() * input.length)).sort((a, b) => a - b);
      expect(rewritten(input, cuts), `cut at ${cuts.join(',')}`).toBe(expected);
    }
  });

  it('passes a chunk through as the same Buffer when it holds no LIST', () => {
    const rewriter = new ListMethodRewriter();
    const chunk = Buffer.from('GET /v1/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
    expect(rewriter.rewrite(chunk)).toBe(chunk);
    expect(rewriter.rewrite(chunk)).toBe(chunk);
  });

  it('stops rewriting on a connection whose framing it cannot follow', () => {
    for (const head of ['Content-Length: 5\r\nContent-Length: 5', 'Content-Length: 5\r\nTransfer-Encoding: chunked', 'Transfer-Encoding: gzip', 'Content-Length: -1', 'X: a\r\n folded', 'Upgrade: h2c']) {
      const input = Buffer.from(`PUT /v1/a HTTP/1.1\r\n${head}\r\n\r\nLIST /v1/ HTTP/1.1\r\n\r\n`, 'latin1');
      expect(rewritten(input, []), head).toBe(input.toString('latin1'));
    }
  });

  it("adds list=true to a LIST target's query, in place of the client's own list parameters", () => {
    const targets: Array<[string, string]> = [
      ['/v1/kv/', '/v1/kv/?list=true'],
      ['/v1/kv/?', '/v1/kv/?list=true'],
      ['/v1/kv/?list', '/v1/kv/?list=true'],
      ['/v1/kv/?list=false&x=1', '/v1/kv/?x=1&list=true'],
      ['/v1/kv/?x=1&list=0&y=2&list', '/v1/kv/?x=1&y=2&list=true'],
      ['/v1/kv/?listing=1&li=2&l', '/v1/kv/?listing=1&li=2&l&list=true'],
      ['/v1/kv/?&&a=1&', '/v1/kv/?a=1&list=true'],
      ['/v1/kv/?a=1#list', '/v1/kv/?a=1&list=true#list'],
      [`/v1/${'a'.repeat(20_000)}?b=1`, `/v1/${'a'.repeat(20_000)}?b=1&list=true`],
    ];
    for (const [target, want] of targets) {
      const input = Buffer.from(`LIST ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');
      const expected = `GET ${want} HTTP/1.1\r\nHost: x\r\n\r\n`;
      expect(rewritten(input, []), target).toBe(expected);
      if (target.length < 100) expect(rewritten(input, [...input.keys()]), target).toBe(expected);
    }
  });

  it('gives the parser GET as soon as LIST is seen, holding back no more than a method or parameter name', () => {
    const rewriter = new ListMethodRewriter();
    const pieces = (chunk: string) => Buffer.concat([rewriter.rewrite(Buffer.from(chunk, 'latin1'))].flat()).toString('latin1');
    expect(pieces('LIS')).toBe('');
    expect(pieces('T /v1/kv/?a=1&li')).toBe('GET /v1/kv/?a=1');
    expect(pieces('st=1&b')).toBe('&b');
    expect(pieces(' HTTP/1.1\r\n')).toBe('&list=true HTTP/1.1\r\n');
    expect(rewriter.end()).toEqual([]);
    const unfinished = new ListMethodRewriter();
    expect(unfinished.rewrite(Buffer.from('LI'))).toEqual([]);
    expect(Buffer.concat(unfinished.end()).toString()).toBe('LI');
  });
});
