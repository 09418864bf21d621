import { describe, expect, it } from 'vitest';
import { DEFAULT_TOKEN_FIELDS, loginAuthOf, parseTokenFields, tokenFieldsData } from '../src/auth/token-fields.js';
import { InvalidRequestError } from '../src/core/errors.js';

describe('parseTokenFields', () => {
  it('reads every token_* field, durations as seconds or Go-style durations', () => {
    const f = parseTokenFields({
      token_policies: 'dev, ops,dev',
      token_ttl: '1h',
      token_max_ttl: 7200,
      token_explicit_max_ttl: '90m',
      token_period: '30m',
      token_num_uses: '3',
      token_bound_cidrs: ['10.0.0.0/8', '127.0.0.1'],
      token_no_default_policy: 'true',
      token_type: 'service',
    });
    expect(tokenFieldsData(f)).toEqual({
      token_policies: ['dev', 'ops'],
      token_ttl: 3600,
      token_max_ttl: 7200,
      token_explicit_max_ttl: 5400,
      token_period: 1800,
      token_num_uses: 3,
      token_bound_cidrs: ['10.0.0.0/8', '127.0.0.1'],
      token_no_default_policy: true,
      token_type: 'service',
    });
  });

  it('keeps the existing value of every field the body leaves out', () => {
    const first = parseTokenFields({ token_policies: ['a'], token_ttl: 60, token_num_uses: 2 });
    const second = parseTokenFields({ token_ttl: 120 }, first);
    expect(second).toEqual({ ...first, ttl: 120 });
    expect(parseTokenFields({}, first)).toEqual(first);
    expect(parseTokenFields({})).toEqual(DEFAULT_TOKEN_FIELDS);
  });

  it('takes legacy spellings only when the token_* field is absent and the method accepts them', () => {
    expect(parseTokenFields({ policies: 'a,b' }).policies).toEqual(['a', 'b']);
    expect(parseTokenFields({ policies: 'a', token_policies: 'b' }).policies).toEqual(['b']);
    expect(parseTokenFields({ ttl: '5m' }).ttl).toBe(0);
    expect(parseTokenFields({ ttl: '5m', period: 60 }, undefined, ['policies', 'ttl', 'period'])).toMatchObject({ ttl: 300, period: 60 });
  });

  it.each([
    [{ token_ttl: '-1' }, /token_ttl must be a number of seconds/],
    [{ token_ttl: 'soon' }, /token_ttl must be a number of seconds/],
    [{ token_num_uses: -1 }, /token_num_uses cannot be negative/],
    [{ token_num_uses: 1.5 }, /token_num_uses must be a whole number/],
    [{ token_bound_cidrs: '10.0.0.0/40' }, /token_bound_cidrs: "10.0.0.0\/40" is not a CIDR block/],
    [{ token_no_default_policy: 'yes' }, /token_no_default_policy must be true or false/],
    [{ token_type: 'batch' }, /token_type "batch" is not offered/],
    [{ token_type: 'other' }, /token_type must be "service" or "default"/],
    [{ token_policies: 'root' }, /auth methods cannot issue root tokens/],
    [{ token_policies: 'Dev' }, /policy name/],
    [{ token_policies: [1] }, /token_policies must contain only strings/],
    [{ token_policies: 5 }, /token_policies must be a list of policy names/],
    [{ token_ttl: 7200, token_max_ttl: 3600 }, /token_ttl \(7200s\) cannot be greater than token_max_ttl \(3600s\)/],
  ])('refuses %j with a 400', (body, message) => {
    expect(() => parseTokenFields(body)).toThrow(InvalidRequestError);
    expect(() => parseTokenFields(body)).toThrow(message);
  });
});

describe('loginAuthOf', () => {
  it('asks for the role token fields and leaves unset ones to the mount', () => {
    const f = parseTokenFields({ token_policies: 'dev', token_ttl: 60, token_num_uses: 2, token_bound_cidrs: '10.0.0.0/8' });
    expect(loginAuthOf(f, 'approle', { role_name: 'r' })).toEqual({
      policies: ['dev'],
      displayName: 'approle',
      metadata: { role_name: 'r' },
      renewable: true,
      ttl: 60,
      numUses: 2,
      boundCidrs: ['10.0.0.0/8'],
    });
    expect(loginAuthOf(parseTokenFields({ token_no_default_policy: true, token_period: 30 }), 'x', {})).toMatchObject({ noDefaultPolicy: true, period: 30 });
  });
});
