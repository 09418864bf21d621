import { describe, expect, it } from 'vitest';
import { cidrContains, cidrWithin, parseCidrList } from '../src/auth/cidr.js';
import { InvalidRequestError } from '../src/core/errors.js';

describe('parseCidrList', () => {
  it('takes an array or a comma-separated string, trims, drops empties and duplicates', () => {
    expect(parseCidrList(['10.0.0.0/8', ' 192.168.1.0/24 '], 'f')).toEqual(['10.0.0.0/8', '192.168.1.0/24']);
    expect(parseCidrList('10.0.0.0/8, 127.0.0.1/32,,10.0.0.0/8', 'f')).toEqual(['10.0.0.0/8', '127.0.0.1/32']);
    expect(parseCidrList('', 'f')).toEqual([]);
    expect(parseCidrList(undefined, 'f')).toEqual([]);
  });

  it('keeps a bare address bare (a single host) and lowercases IPv6', () => {
    expect(parseCidrList('127.0.0.1,FE80::1', 'f')).toEqual(['127.0.0.1', 'fe80::1']);
    expect(parseCidrList('2001:DB8::/32', 'f')).toEqual(['2001:db8::/32']);
  });

  it.each([
    ['10.0.0.0/33'],
    ['10.0.0/8'],
    ['300.1.1.1/8'],
    ['10.0.0.0/'],
    ['10.0.0.0/-1'],
    ['10.0.0.0/8/8'],
    ['example.com'],
    ['::1/129'],
    ['fe80::1%eth0/64'],
    ['10.0.0.0/ 8'],
  ])('refuses %j with a 400 naming the field and the entry', (bad) => {
    expect(() => parseCidrList(bad, 'secret_id_bound_cidrs')).toThrow(InvalidRequestError);
    expect(() => parseCidrList(['127.0.0.1/32', bad], 'secret_id_bound_cidrs')).toThrow(`secret_id_bound_cidrs: "${bad}" is not a CIDR block`);
  });

  it('refuses values that are not lists of strings', () => {
    expect(() => parseCidrList(8, 'token_bound_cidrs')).toThrow(/token_bound_cidrs must be a list of CIDR blocks/);
    expect(() => parseCidrList([8], 'token_bound_cidrs')).toThrow(/token_bound_cidrs must contain only strings/);
    expect(() => parseCidrList({ a: 1 }, 'token_bound_cidrs')).toThrow(InvalidRequestError);
  });

  it('bounds the number of entries', () => {
    const many = Array.from({ length: 300 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    expect(() => parseCidrList(many, 'f')).toThrow(/at most 256/);
  });
});

describe('cidrContains', () => {
  it('matches addresses inside a block and only those', () => {
    const cidrs = parseCidrList('10.0.0.0/8,192.168.1.0/24', 'f');
    expect(cidrContains(cidrs, '10.255.0.1')).toBe(true);
    expect(cidrContains(cidrs, '192.168.1.200')).toBe(true);
    expect(cidrContains(cidrs, '192.168.2.1')).toBe(false);
    expect(cidrContains(cidrs, '11.0.0.1')).toBe(false);
    expect(cidrContains(cidrs, '127.0.0.1')).toBe(false);
  });

  it('matches a single host exactly', () => {
    for (const cidrs of [parseCidrList('127.0.0.1', 'f'), parseCidrList('127.0.0.1/32', 'f')]) {
      expect(cidrContains(cidrs, '127.0.0.1')).toBe(true);
      expect(cidrContains(cidrs, '::ffff:127.0.0.1')).toBe(true);
      expect(cidrContains(cidrs, '127.0.0.2')).toBe(false);
    }
    expect(cidrContains(parseCidrList('::1', 'f'), '::1')).toBe(true);
    expect(cidrContains(parseCidrList('::1', 'f'), '::2')).toBe(false);
  });

  it('matches an IPv4 client seen on a dual-stack socket as its IPv4 address', () => {
    expect(cidrContains(['10.0.0.0/8'], '::ffff:10.1.2.3')).toBe(true);
    expect(cidrContains(['10.0.0.0/8'], '::FFFF:11.1.2.3')).toBe(false);
  });

  it('matches IPv6 blocks', () => {
    expect(cidrContains(['2001:db8::/32'], '2001:db8:1::5')).toBe(true);
    expect(cidrContains(['2001:db8::/32'], '2001:db9::5')).toBe(false);
    expect(cidrContains(['::1/128'], '::1')).toBe(true);
  });

  it('contains nothing when the list is empty or the address is not an IP', () => {
    expect(cidrContains([], '10.0.0.1')).toBe(false);
    expect(cidrContains(['0.0.0.0/0'], 'not-an-ip')).toBe(false);
    expect(cidrContains(['0.0.0.0/0'], '')).toBe(false);
    expect(cidrContains(['0.0.0.0/0'], '8.8.8.8')).toBe(true);
  });
});

describe('cidrWithin', () => {
  it('holds when the whole inner block lies in one outer block', () => {
    expect(cidrWithin('10.1.0.0/16', ['10.0.0.0/8'])).toBe(true);
    expect(cidrWithin('10.1.2.3', ['10.0.0.0/8'])).toBe(true);
    expect(cidrWithin('10.0.0.0/8', ['10.0.0.0/8'])).toBe(true);
    expect(cidrWithin('192.168.0.0/24', ['10.0.0.0/8', '192.168.0.0/16'])).toBe(true);
    expect(cidrWithin('127.0.0.1', ['127.0.0.1'])).toBe(true);
  });

  it('fails for a wider block, a disjoint one or another family', () => {
    expect(cidrWithin('10.0.0.0/7', ['10.0.0.0/8'])).toBe(false);
    expect(cidrWithin('0.0.0.0/0', ['10.0.0.0/8'])).toBe(false);
    expect(cidrWithin('11.0.0.0/16', ['10.0.0.0/8'])).toBe(false);
    expect(cidrWithin('10.0.0.0/8', ['10.1.0.0/16'])).toBe(false);
    expect(cidrWithin('::1', ['0.0.0.0/0'])).toBe(false);
    expect(cidrWithin('10.0.0.1', [])).toBe(false);
  });
});
