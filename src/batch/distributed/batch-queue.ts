import { Queue, type ConnectionOptions } from 'bullmq';
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
/** The job's latest counters, left by each recorded shard or failed attempt for the waiting submitter (a list of one). */
const eventKey = (job: string): string => `caliper:batch:${job}:event`;
export const shardJobId = (job: string, shard: Shard): string => `${job}_${shardKey(shard)}`;

// The job's counters with the queue's failed-job count, as ShardEvent's fields, replacing the job's unread event: the
// submitter blocks on the list (BLPOP) and reads the end of its job from the event, without another round trip.
const NOTIFY = `
local counters = redis.call('HMGET', KEYS[1], 'doneShards', 'shards', 'rows')
if not counters[2] then return 0 end
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], counters[1] .. ' ' .. counters[2] .. ' ' .. counters[3] .. ' ' .. redis.call('ZCARD', KEYS[4]))
redis.call('PEXPIRE', KEYS[3], 86400000)
return 1`;

// Counts a committed shard once, however many times a retried or zombie worker commits it, then notifies.
const RECORD_SHARD = `
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'doneShards', 1)
  redis.call('HINCRBY', KEYS[1], 'rows', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'outputRows', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'errors', ARGV[4])
end
${NOTIFY}`;

/** A job's progress as a waiting submitter reads it: its shard and row counters and the queue's failed shard jobs. */
export interface ShardEvent {
  shards: number;
  doneShards: number;
  rows: number;
  /** Failed shard jobs in the queue, of any job: a reason to read status(). */
  failedJobs: number;
}

/** The batch jobs' shared state in Redis: the spec, per-job counters and the BullMQ queue of shards. */
export class BatchQueue {
  readonly queue: Queue<ShardJobData>;
  readonly redis: Redis;
  /** The connection a waiting submitter blocks on (BLPOP), opened by watchShards(). */
  private events: Redis | undefined;

  constructor(url: string) {
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
    const todo = shards.filter((s) => !done.has(shardKey(s)));
    // One round trip for the spec, fresh counters and which shard jobs an earlier run of the job left finished (a
    // failed job is kept; a completed one once was): those are removed before their shards are queued again, while a
    // job still waiting or running is left to run. Then the committed parts and the removals side by side.
    const transaction = this.redis
      .multi()
      .set(specKey(spec.id), JSON.stringify(spec))
      .del(statusKey(spec.id), doneKey(spec.id), eventKey(spec.id))
      .hset(statusKey(spec.id), {
        shards: shards.length,
        totalRows,
        doneShards: 0,
        rows: 0,
        outputRows: 0,
        errors: 0,
        output: spec.outputFile ?? spec.partsDir,
        state: 'running',
      });
    for (const shard of todo)
      transaction
        .zscore(this.queue.toKey('failed'), shardJobId(spec.id, shard))
        .zscore(this.queue.toKey('completed'), shardJobId(spec.id, shard));
    const replies = (await transaction.exec()) ?? [];
    const finished = todo.filter((_, i) => replies[3 + 2 * i]?.[1] != null || replies[4 + 2 * i]?.[1] != null);
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
      ...finished.map((shard) => this.queue.remove(shardJobId(spec.id, shard))),
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

  /** Counts a committed shard in the job's counters (once per shard) and leaves the submitter an event. */
  async recordShard(job: string, shard: Shard, rows: number, outputRows: number, errors: number): Promise<void> {
    await this.redis.eval(
      RECORD_SHARD,
      4,
      statusKey(job),
      doneKey(job),
      eventKey(job),
      this.queue.toKey('failed'),
      shardKey(shard),
      rows,
      outputRows,
      errors,
    );
  }

  /** Leaves the job's waiting submitter an event (a shard attempt failed): it reads status() if a job has failed. */
  async notify(job: string): Promise<void> {
    await this.redis.eval(NOTIFY, 4, statusKey(job), doneKey(job), eventKey(job), this.queue.toKey('failed'));
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
  async progress(job: string): Promise<ShardEvent> {
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
   * Starts opening the connection nextShardEvent() blocks on (its own: a blocked connection answers nothing else),
   * while the submitter plans; its commands wait for it. Events left before the first wait are kept for it.
   */
  watchShards(): void {
    this.events ??= this.redis.duplicate();
  }

  /**
   * The job's counters as left by the last shard recorded or attempt failed since the previous call (each event
   * replaces the unread one), or undefined after `timeoutMs` without one: then the submitter reads progress() itself,
   * so that a shard that failed unseen (a killed worker's, failed by BullMQ's stall check) is still noticed.
   * Resolves undefined at once once close() is called. Errors: Redis's, as rejections.
   */
  async nextShardEvent(job: string, timeoutMs: number): Promise<ShardEvent | undefined> {
    this.watchShards();
    // BLPOP's timeout is in seconds (fractions since Redis 6); 0 would block for ever.
    const popped = await this.events!.blpop(eventKey(job), Math.max(timeoutMs, 1) / 1000).catch((error: unknown) => {
      if (this.closing) return null;
      throw error;
    });
    if (!popped) return undefined;
    const [doneShards, shards, rows, failedJobs] = popped[1].split(' ').map(Number) as [number, number, number, number];
    return { shards, doneShards, rows, failedJobs };
  }

  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    this.events?.disconnect();
    await this.queue.close();
    this.redis.disconnect();
  }
}
