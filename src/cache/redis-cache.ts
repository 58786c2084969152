import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type { ResponseCache } from './response-cache.ts';

export interface RedisCacheOptions {
  url: string;
  /** Every key starts with it: model, version and model fingerprint, so a new version never reads old entries. */
  namespace: string;
  ttlMs: number;
  /** A lookup slower than this counts as a miss: a slow cache must not slow the request. */
  commandTimeoutMs?: number;
}

/**
 * Responses shared across replicas in Redis. Each entry expires after the TTL; memory is bounded by the
 * Redis server's own maxmemory policy (allkeys-lru). Any Redis failure is a miss, never a failed request.
 */
export class RedisCache implements ResponseCache {
  hits = 0;
  misses = 0;
  errors = 0;
  readonly size = 0;
  private readonly client: Redis;

  constructor(private readonly options: RedisCacheOptions) {
    // ioredis is loaded with the first Redis cache (synchronously: it is CommonJS), not by every server start.
    const { Redis } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
    this.client = new Redis(options.url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 50,
      retryStrategy: (attempt) => Math.min(1000, attempt * 100),
    });
    // Without a listener ioredis reports connection errors as unhandled; they are counted, and lookups miss.
    this.client.on('error', () => {
      this.errors++;
    });
  }

  /**
   * Resolves once the connection is ready (at once if it already is), so a caller can tell "not connected yet" from
   * "missing". Rejects with a clear error after `timeoutMs` milliseconds (default 5000).
   */
  async whenReady(timeoutMs = 5_000): Promise<void> {
    if (this.client.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        reject(new Error(`Redis cache at ${this.options.url}: not connected after ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
  }

  private keyOf(key: string): string {
    return this.options.namespace + createHash('sha1').update(key).digest('base64url');
  }

  async get(key: string): Promise<string | undefined> {
    try {
      const value = await this.client.get(this.keyOf(key));
      if (value === null) {
        this.misses++;
        return undefined;
      }
      this.hits++;
      return value;
    } catch {
      this.errors++;
      this.misses++;
      return undefined;
    }
  }

  async set(key: string, value: string): Promise<void> {
    try {
      await this.client.set(this.keyOf(key), value, 'PX', Math.max(1, Math.round(this.options.ttlMs)));
    } catch {
      this.errors++;
    }
  }

  async clear(): Promise<void> {
    try {
      let cursor = '0';
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', `${this.options.namespace}*`, 'COUNT', 500);
        if (keys.length > 0) await this.client.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
    } catch {
      this.errors++;
    }
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
