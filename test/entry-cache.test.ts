import { describe, expect, it } from 'vitest';
import { EntryCache } from '../src/storage/entry-cache.js';

describe('EntryCache', () => {
  it('keeps entries within its byte budget, least recently used out first', () => {
    const cache = new EntryCache(1600);
    for (const k of ['a', 'b', 'c']) cache.set(k, Buffer.alloc(99));
    expect(cache.get('a')?.length).toBe(99);
    // Fifteen more 100-byte entries (key + value): 1,800 bytes, so the two oldest must go.
    for (const k of 'defghijklmnopqr') cache.set(k, Buffer.alloc(99));
    // 'b' and 'c' were least recently used; 'a' was read, so it stays longer.
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('c')).toBeUndefined();
    expect(cache.get('a')?.length).toBe(99);
  });

  it('remembers absent entries, replaces and drops, and skips values too big to be worth it', () => {
    const cache = new EntryCache(1600);
    cache.set('gone', null);
    expect(cache.get('gone')).toBeNull();
    cache.set('k', Buffer.from('one'));
    cache.set('k', Buffer.from('two'));
    expect(cache.get('k')?.toString()).toBe('two');
    cache.drop('k');
    expect(cache.get('k')).toBeUndefined();
    cache.set('big', Buffer.alloc(200));
    expect(cache.get('big')).toBeUndefined();
  });
});
