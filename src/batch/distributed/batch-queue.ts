import { Queue, QueueEvents, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { CaliperError } from '../../errors.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import type { PartMeta } from '../io/output-layout.ts';
import { shardKey, type Shard } from './shard-plan.ts';

export const BATCH_QUEUE = 'caliper-batch';

/** A shard as a BullMQ job's data; the spec itself is stored once per batch job in Redis. */
export interface ShardJobData {
  job: string;
  shard: Shard;
}

export interface BatchStatus {
  job: string;
  state: 'running' | 'completed' | 'failed' | 'unknown';
  shards: number;
  doneShards: number;
  totalRows: number;
  rows: number;
  outputRows: number;
  errors: number;
  failedShards: { shard: string; reason: string; attempts: number }[];
  output?: string;
}

/** Redis connection options from redis://[:password@]host:port[/db]. */
export interface RedisEndpoint {
  host: string;
  port: number;
  db: number;
  password?: string;
  username?: string;
  tls?: Record<string, never>;
}

export function redisEndpoint(url: string): RedisEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CaliperError('CALIPER_INVALID_INPUT', `--queue: expected redis://HOST:PORT, got "${url}"`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw new CaliperError('CALIPER_INVALID_INPUT', `--queue: expected a redis:// URL, got "${url}"`);
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    db,
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** BullMQ's connection options (it needs maxRetriesPerRequest: null for blocking commands). */
export function redisConnection(url: string): ConnectionOptions {
  return { ...redisEndpoint(url), maxRetriesPerRequest: null };
}

const statusKey = (job: string): string => `caliper:batch:${job}`;
const doneKey = (job: string): string => `caliper:batch:${job}:done`;
const specKey = (job: string): string => `caliper:batch:${job}:spec`;
export const shardJobId = (job: string, shard: Shard): string => `${job}_${shardKey(shard)}`;

// Counts a committed shard once, however many times a retried or zombie worker commits it.
const RECORD_SHARD = `
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'doneShards', 1)
  redis.call('HINCRBY', KEYS[1], 'rows', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'outputRows', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'errors', ARGV[4])
  return 1
end
return 0`;

/** The batch jobs' shared state in Redis: the spec, per-job counters and the BullMQ queue of shards. */
export class BatchQueue {
  readonly queue: Queue<ShardJobData>;
  readonly redis: Redis;
  private events: QueueEvents | undefined;
  /** A shard completed or failed since the last nextShardEvent() returned. */
  private eventPending = false;
  private wake: (() => void) | undefined;

  constructor(private readonly url: string) {
    const endpoint = redisEndpoint(url);
    this.redis = new Redis({ ...endpoint, maxRetriesPerRequest: null });
    // BullMQ's Queue on the same connection: one connect and one load of its scripts fewer before the shards are queued.
    this.queue = new Queue<ShardJobData>(BATCH_QUEUE, { connection: this.redis });
  }

  /** Stores the spec and counters, then queues the shards not yet committed (failed ones are re-queued). */
  async submit(
    spec: BatchJobSpec,
    shards: readonly Shard[],
    committed: readonly PartMeta[],
    totalRows: number,
    attempts: number,
  ): Promise<void> {
    const done = new Set(committed.map((p) => shardKey({ fileIndex: p.fileIndex, start: p.start, end: null })));
    // One round trip for the spec and fresh counters, then the committed parts and stale shard jobs side by side,
    // not one after another: every worker waits for this.
    await this.redis
      .multi()
      .set(specKey(spec.id), JSON.stringify(spec))
      .del(statusKey(spec.id), doneKey(spec.id))
      .hset(statusKey(spec.id), {
        shards: shards.length,
        totalRows,
        doneShards: 0,
        rows: 0,
        outputRows: 0,
        errors: 0,
        output: spec.outputFile ?? spec.partsDir,
        state: 'running',
      })
      .exec();
    const todo = shards.filter((s) => !done.has(shardKey(s)));
    await Promise.all([
      ...committed.map((part) =>
        this.recordShard(
          spec.id,
          { fileIndex: part.fileIndex, start: part.start, end: null },
          part.inputRows,
          part.outputRows,
          part.errors.length,
        ),
      ),
      ...todo.map(async (shard) => {
        const existing = await this.queue.getJob(shardJobId(spec.id, shard));
        if (existing && ((await existing.isFailed()) || (await existing.isCompleted()))) await existing.remove();
      }),
    ]);
    await this.queue.addBulk(
      todo.map((shard) => ({
        name: 'shard',
        data: { job: spec.id, shard },
        opts: {
          jobId: shardJobId(spec.id, shard),
          attempts,
          backoff: { type: 'exponential', delay: 500 },
          removeOnComplete: true,
          removeOnFail: false,
        },
      })),
    );
  }

  async spec(job: string): Promise<BatchJobSpec> {
    const text = await this.redis.get(specKey(job));
    if (!text) throw new CaliperError('CALIPER_NOT_FOUND', `batch job ${job}: not found in the queue's Redis`);
    return JSON.parse(text) as BatchJobSpec;
  }

  async recordShard(job: string, shard: Shard, rows: number, outputRows: number, errors: number): Promise<void> {
    await this.redis.eval(RECORD_SHARD, 2, statusKey(job), doneKey(job), shardKey(shard), rows, outputRows, errors);
  }

  async setState(job: string, state: BatchStatus['state']): Promise<void> {
    await this.redis.hset(statusKey(job), 'state', state);
  }

  async status(job: string): Promise<BatchStatus> {
    const hash = await this.redis.hgetall(statusKey(job));
    if (Object.keys(hash).length === 0)
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `batch job ${job}: not found (is --queue the Redis the job was submitted to?)`,
      );
    const failed = await this.queue.getJobs(['failed'], 0, -1);
    const failedShards = failed
      .filter((j) => j?.data?.job === job)
      .map((j) => ({ shard: shardKey(j.data.shard), reason: j.failedReason ?? 'unknown', attempts: j.attemptsMade }));
    const shards = Number(hash.shards);
    const doneShards = Number(hash.doneShards);
    let state = (hash.state ?? 'unknown') as BatchStatus['state'];
    if (state === 'running' && failedShards.length > 0 && doneShards + failedShards.length >= shards) state = 'failed';
    return {
      job,
      state,
      shards,
      doneShards,
      totalRows: Number(hash.totalRows),
      rows: Number(hash.rows),
      outputRows: Number(hash.outputRows),
      errors: Number(hash.errors),
      failedShards,
      ...(hash.output ? { output: hash.output } : {}),
    };
  }

  /**
   * The job's shard and row counters with the queue's count of failed shard jobs (of any job), in one round trip: what
   * a waiting submitter reads on each shard event; status() (which reads every failed job) only once one has failed.
   */
  async progress(job: string): Promise<{ shards: number; doneShards: number; rows: number; failedJobs: number }> {
    const [[, hash], [, failedJobs]] = (await this.redis
      .multi()
      .hmget(statusKey(job), 'shards', 'doneShards', 'rows')
      .zcard(this.queue.toKey('failed'))
      .exec()) as [[Error | null, (string | null)[]], [Error | null, number]];
    if (hash[0] === null)
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `batch job ${job}: not found (is --queue the Redis the job was submitted to?)`,
      );
    return { shards: Number(hash[0]), doneShards: Number(hash[1]), rows: Number(hash[2]), failedJobs };
  }

  /**
   * Starts listening for shards that complete or fail (BullMQ's queue events, read from Redis as they happen), so
   * that nextShardEvent() can wake the submitter at once. Call before the first status().
   */
  async watchShards(): Promise<void> {
    if (this.events) return;
    this.events = new QueueEvents(BATCH_QUEUE, { connection: redisConnection(this.url) });
    const onEvent = (): void => {
      this.eventPending = true;
      this.wake?.();
    };
    this.events.on('completed', onEvent);
    this.events.on('failed', onEvent);
    await this.events.waitUntilReady();
  }

  /**
   * Resolves when a shard (of any job on this queue) has completed or failed since the last call, or after
   * `timeoutMs` at the latest: a submitter waiting on its job re-reads status() then, instead of polling on a fixed
   * period, which left a finished job unnoticed for up to a period (a quarter of a second of a one-second job).
   */
  nextShardEvent(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        this.eventPending = false;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      if (this.eventPending) done();
      else this.wake = done;
    });
  }

  async close(): Promise<void> {
    this.wake?.();
    await this.events?.close();
    await this.queue.close();
    this.redis.disconnect();
  }
}
