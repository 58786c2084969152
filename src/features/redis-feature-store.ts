import { Redis } from 'ioredis';
import type { FeatureFieldSpec } from './feature-config.ts';
import { FeatureStoreError, type FeatureStore, type FeatureVector } from './feature-store.ts';
import { featureValueOf } from './feature-table.ts';

export interface RedisFeatureStoreOptions {
  /** How long connect() waits for the first connection before serving degraded (it keeps retrying). */
  connectTimeoutMs?: number;
  /** Consecutive failed lookups that open the circuit (lookups then fail fast instead of queueing on a stuck socket). */
  failureThreshold?: number;
  /** How long an open circuit fails fast before one probe lookup is let through. */
  openMs?: number;
}

/**
 * Features kept in Redis hashes (HSET user:42 user_txn_count 17 ...), one hash per entity.
 * A batch of keys is fetched in one round trip: one HMGET per key, sent as one pipeline; concurrent
 * single-key lookups share a write through ioredis auto-pipelining.
 *
 * Faults: commands are never queued while disconnected (they fail at once), ioredis reconnects in the
 * background, and after `failureThreshold` consecutive timeouts or errors a circuit opens so a stalled
 * server costs callers nothing; a probe every `openMs` closes it again once Redis answers.
 */
export class RedisFeatureStore implements FeatureStore {
  readonly kind = 'redis';
  private readonly fieldNames: string[];
  private consecutiveFailures = 0;
  private openUntil = 0;
  private probing = false;
  private readonly failureThreshold: number;
  private readonly openMs: number;
  /** The last connection error, for diagnostics. */
  lastError: string | undefined;

  private constructor(
    readonly client: Redis,
    private readonly fields: readonly FeatureFieldSpec[],
    options: RedisFeatureStoreOptions,
  ) {
    this.fieldNames = fields.map((f) => f.name);
    this.failureThreshold = options.failureThreshold ?? 3;
    this.openMs = options.openMs ?? 250;
    client.on('error', (error: Error) => {
      this.lastError = error.message;
    });
  }

  static async connect(
    url: string,
    fields: readonly FeatureFieldSpec[],
    options: RedisFeatureStoreOptions = {},
  ): Promise<RedisFeatureStore> {
    const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    const client = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: true,
      connectTimeout: connectTimeoutMs,
      retryStrategy: (times) => Math.min(times * 100, 1000),
    });
    const store = new RedisFeatureStore(client, fields, options);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, connectTimeoutMs);
      client.once('ready', done);
      function done(): void {
        clearTimeout(timer);
        client.off('ready', done);
        resolve();
      }
    });
    return store;
  }

  get connected(): boolean {
    return this.client.status === 'ready';
  }

  get circuitOpen(): boolean {
    return this.consecutiveFailures >= this.failureThreshold;
  }

  async lookup(keys: readonly string[], timeoutMs: number): Promise<(FeatureVector | null)[]> {
    if (keys.length === 0) return [];
    if (this.client.status !== 'ready')
      throw new FeatureStoreError(
        'error',
        `redis is not connected (${this.client.status}${this.lastError ? `: ${this.lastError}` : ''})`,
      );
    let probe = false;
    if (this.circuitOpen) {
      if (this.probing || performance.now() < this.openUntil)
        throw new FeatureStoreError('error', 'redis is not answering (circuit open)');
      probe = true;
      this.probing = true;
    }
    try {
      const replies = await this.withTimeout(this.fetch(keys), timeoutMs);
      this.consecutiveFailures = 0;
      return replies.map((values) => this.decode(values));
    } catch (error) {
      this.consecutiveFailures++;
      if (this.circuitOpen) this.openUntil = performance.now() + this.openMs;
      if (error instanceof FeatureStoreError) throw error;
      throw new FeatureStoreError('error', `redis lookup failed: ${(error as Error).message}`);
    } finally {
      if (probe) this.probing = false;
    }
  }

  private async fetch(keys: readonly string[]): Promise<(string | null)[][]> {
    if (keys.length === 1) return [await this.client.hmget(keys[0]!, ...this.fieldNames)];
    const pipeline = this.client.pipeline();
    for (const key of keys) pipeline.hmget(key, ...this.fieldNames);
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, values]) => {
      if (error) throw error;
      return values as (string | null)[];
    });
  }

  private withTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new FeatureStoreError('timeout', `redis did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  private decode(values: (string | null)[]): FeatureVector | null {
    let any = false;
    const vector: FeatureVector = new Array(this.fields.length);
    for (let i = 0; i < this.fields.length; i++) {
      const raw = values[i];
      if (raw !== null && raw !== undefined) any = true;
      vector[i] = featureValueOf(this.fields[i]!, raw);
    }
    return any ? vector : null;
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
