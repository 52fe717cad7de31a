import { describe, expect, it } from 'vitest';
import { ByteLru } from './byte-lru.js';

describe('ByteLru', () => {
  it('forgets the least recently used entries past its size in bytes', () => {
    const lru = new ByteLru<string>(10);
    lru.set('a', 'A', 4);
    lru.set('b', 'B', 4);
    expect(lru.get('a')).toBe('A'); // a is now the most recently used
    lru.set('c', 'C', 4); // 12 bytes: b goes
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe('A');
    expect(lru.get('c')).toBe('C');
    expect(lru.size).toBe(2);
  });

  it('replaces an entry without counting it twice, and keeps nothing larger than the whole', () => {
    const lru = new ByteLru<number>(8);
    lru.set('a', 1, 4);
    lru.set('a', 2, 4);
    lru.set('b', 3, 4);
    expect([lru.get('a'), lru.get('b'), lru.size]).toEqual([2, 3, 2]);
    lru.set('huge', 4, 9);
    expect(lru.get('huge')).toBeUndefined();
    expect(new ByteLru<number>(0).size).toBe(0);
    const off = new ByteLru<number>(0);
    off.set('x', 1, 1);
    expect(off.get('x')).toBeUndefined();
  });
});
