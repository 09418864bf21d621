import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

/** What Vault's HTTP clients (hvac 0.11, the Vault CLI) rely on beyond the bodies. */
describe('Vault HTTP details clients depend on', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  beforeAll(async () => {
    kw = await startInProcess('inmem');
    base = kw.service.url;
    ({ root } = await initAndUnseal(base, 1, 1));
    await call(base, 'PUT', 'secret/app/db', { token: root, body: { v: 1 } });
    await call(base, 'POST', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } });
    await call(base, 'POST', 'kv/data/app/db', { token: root, body: { data: { v: 1 } } });
  });
  afterAll(() => kw.service.close());

  it('takes ?list= in every spelling of true Vault takes (hvac sends "True")', async () => {
    for (const spelling of ['true', 'True', 'TRUE', 't', 'T', '1']) {
      expect((await call(base, 'GET', `secret/app?list=${spelling}`, { token: root })).body.data, spelling).toEqual({ keys: ['db'] });
      expect((await call(base, 'GET', `kv/metadata/app?list=${spelling}`, { token: root })).body.data, spelling).toEqual({ keys: ['db'] });
    }
    for (const spelling of ['false', 'no', 'yes', '']) {
      expect((await call(base, 'GET', `secret/app?list=${spelling}`, { token: root })).status, spelling).toBe(404);
    }
    expect((await call(base, 'GET', 'auth/token/accessors?list=True', { token: root })).status).toBe(200);
  });

  it('answers errors as exactly application/json, which hvac 0.11 requires to read them', async () => {
    const cases: Array<[string, RequestInit]> = [
      ['secret/app/db', {}],
      ['secret/app/db', { headers: { 'X-Vault-Token': 'hvs.nope' } }],
      ['no/such/mount', { headers: { 'X-Vault-Token': root } }],
      ['secret/x', { method: 'PUT', headers: { 'X-Vault-Token': root }, body: '{"broken' }],
      ['sys/nothing-here', { headers: { 'X-Vault-Token': root } }],
    ];
    for (const [path, init] of cases) {
      const res = await fetch(`${base}/v1/${path}`, init);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('content-type'), `${init.method ?? 'GET'} ${path} → ${res.status}`).toBe('application/json');
      expect(((await res.json()) as { errors: string[] }).errors.length).toBeGreaterThan(0);
    }
  });
});
