import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

describe('sys/hsm: the PKCS#11 module and token a node uses, for operators', () => {
  let kw: InProcess;
  let root: string;

  beforeAll(async () => {
    kw = await startInProcess('inmem');
    root = (await initAndUnseal(kw.service.url, 1, 1)).root;
  });
  afterAll(async () => kw?.service.close());

  it('reports the module, the token, who picks IVs, the key wrap chosen and where calls run; nothing secret', async () => {
    const r = await call(kw.service.url, 'GET', 'sys/hsm', { token: root });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({
      library: kw.token.config.lib,
      token_label: kw.token.config.tokenLabel,
      slot: null,
      seal_key_label: kw.token.config.keyLabel,
      iv_policy: 'probe',
      iv_style: 'caller',
      key_wrap: { rfc5649: '0x210a', rfc3394: '0x2109' },
      connected: true,
      dispatch: { mode: 'event-loop', max_parallel: 0, round_trip_us: expect.any(Number), token_session_limit: null },
    });
    expect(JSON.stringify(r.body)).not.toContain(kw.token.config.pin);
  });

  it('needs a token with read on sys/hsm', async () => {
    expectError(await call(kw.service.url, 'GET', 'sys/hsm'), 403, /no client token/);
    await call(kw.service.url, 'PUT', 'sys/policies/acl/kv-only', { token: root, body: { policy: 'path "secret/*" { capabilities = ["read"] }' } });
    const child = await call(kw.service.url, 'POST', 'auth/token/create', { token: root, body: { policies: ['kv-only'] } });
    expectError(await call(kw.service.url, 'GET', 'sys/hsm', { token: child.body.auth.client_token }), 403, /do not grant read on "sys\/hsm"/);
  });
});
