import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryCache } from '../../src/cache/memory-cache.ts';
import { RedisCache } from '../../src/cache/redis-cache.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';

describe('MemoryCache', () => {
  it('evicts the least recently used entry beyond max_entries', () => {
    const cache = new MemoryCache({ maxEntries: 2, maxBytes: 1e6, ttlMs: 60_000 });
    cache.set('a', '1');
    cache.set('b', '2');
    expect(cache.get('a')).toBe('1');
    cache.set('c', '3');
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('1');
    expect(cache.get('c')).toBe('3');
    expect(cache.size).toBe(2);
    expect([cache.hits, cache.misses]).toEqual([3, 1]);
  });

  it('stays under max_bytes and refuses a value larger than the bound', () => {
    const cache = new MemoryCache({ maxEntries: 100, maxBytes: 100, ttlMs: 60_000 });
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, 'x'.repeat(20));
    expect(cache.usedBytes).toBeLessThanOrEqual(100);
    expect(cache.size).toBe(2);
    expect(cache.get('k9')).toBe('x'.repeat(20));
    cache.set('huge', 'y'.repeat(200));
    expect(cache.get('huge')).toBeUndefined();
  });

  it('expires entries after the TTL', () => {
    let now = 1000;
    const cache = new MemoryCache({ maxEntries: 10, maxBytes: 1e6, ttlMs: 500, now: () => now });
    cache.set('a', '1');
    now += 499;
    expect(cache.get('a')).toBe('1');
    now += 1;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});

describe('RedisCache', () => {
  let redis: PrivateRedis & { dispose(): Promise<void> };
  beforeAll(async () => {
    redis = await startPrivateRedis();
  });
  afterAll(async () => {
    await redis.dispose();
  });

  it('shares entries between two clients (replicas) and clears its namespace only', async () => {
    // A generous command timeout: this test is about sharing, and a loaded machine must not turn it into misses.
    const options = { url: redis.url, ttlMs: 60_000, commandTimeoutMs: 5_000 };
    const a = new RedisCache({ ...options, namespace: 'caliper:cache:m:1:fp:' });
    const b = new RedisCache({ ...options, namespace: 'caliper:cache:m:1:fp:' });
    const other = new RedisCache({ ...options, namespace: 'caliper:cache:m:2:fp:' });
    await Promise.all([a.whenReady(), b.whenReady(), other.whenReady()]);
    await a.set('{"x":1}', '[{"y":2}]');
    expect(await b.get('{"x":1}')).toBe('[{"y":2}]');
    expect(await other.get('{"x":1}')).toBeUndefined();
    await other.set('{"x":1}', 'v2');
    await a.clear();
    expect(await b.get('{"x":1}')).toBeUndefined();
    expect(await other.get('{"x":1}')).toBe('v2');
    expect([b.hits, b.misses]).toEqual([1, 1]);
    await Promise.all([a.close(), b.close(), other.close()]);
  });

  it('expires entries after the TTL', async () => {
    // Redis expires the key (PX): a TTL long enough that set-then-get never outlives it on a loaded machine.
    const cache = new RedisCache({
      url: redis.url,
      namespace: 'caliper:cache:ttl:',
      ttlMs: 1_500,
      commandTimeoutMs: 5_000,
    });
    await cache.whenReady();
    await cache.set('k', 'v');
    expect(await cache.get('k')).toBe('v');
    await new Promise((r) => setTimeout(r, 1_800));
    expect(await cache.get('k')).toBeUndefined();
    await cache.close();
  });

  it('answers a miss, not an error, when Redis does not respond', async () => {
    const cache = new RedisCache({
      url: redis.url,
      namespace: 'caliper:cache:slow:',
      ttlMs: 60_000,
      commandTimeoutMs: 30,
    });
    await cache.whenReady();
    await cache.set('k', 'v');
    redis.pause();
    try {
      const started = performance.now();
      expect(await cache.get('k')).toBeUndefined();
      expect(performance.now() - started).toBeLessThan(1000);
      expect(cache.errors).toBeGreaterThan(0);
    } finally {
      redis.resume();
    }
    await cache.close();
  });
});
