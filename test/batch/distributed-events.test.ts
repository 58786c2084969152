import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchJobSpec } from '../../src/batch/batch-job.ts';
import { BatchQueue } from '../../src/batch/distributed/batch-queue.ts';
import type { Shard } from '../../src/batch/distributed/shard-plan.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';

/**
 * The events a waiting `--queue` submitter reads: each recorded shard (or failed attempt) leaves the job's counters in
 * Redis, so the submitter reads the end of its job from the event itself, without another round trip.
 */
let redis: PrivateRedis & { dispose(): Promise<void> };

beforeAll(async () => {
  redis = await startPrivateRedis();
});

afterAll(async () => {
  await redis?.dispose();
});

const shards: Shard[] = [
  { fileIndex: 0, start: 0, end: 10 },
  { fileIndex: 0, start: 10, end: 20 },
  { fileIndex: 0, start: 20, end: null },
];

/** A queue holding job `id`'s three shards, for nothing but its counters and events (no worker takes them). */
async function submitted(id: string): Promise<BatchQueue> {
  const queue = new BatchQueue(redis.url);
  const spec = { id, partsDir: `/nowhere/${id}` } as unknown as BatchJobSpec;
  await queue.submit(spec, shards, [], 30, 1);
  await queue.queue.remove(`${id}_0-0`);
  await queue.queue.remove(`${id}_0-10`);
  await queue.queue.remove(`${id}_0-20`);
  return queue;
}

describe('shard events for a waiting --queue submitter', () => {
  it('a recorded shard leaves the counters; a newer event replaces an unread one; a shard recorded twice counts once', async () => {
    const queue = await submitted('events-latest');
    try {
      queue.watchShards();
      await queue.recordShard('events-latest', shards[0]!, 10, 10, 0);
      await queue.recordShard('events-latest', shards[1]!, 10, 9, 1);
      expect(await queue.nextShardEvent('events-latest', 1000)).toEqual({
        shards: 3,
        doneShards: 2,
        rows: 20,
        failedJobs: 0,
      });
      // Read: nothing newer until a shard is recorded again.
      expect(await queue.nextShardEvent('events-latest', 50)).toBeUndefined();
      await queue.recordShard('events-latest', shards[1]!, 10, 9, 1);
      expect(await queue.nextShardEvent('events-latest', 1000)).toMatchObject({ doneShards: 2, rows: 20 });
      await queue.recordShard('events-latest', shards[2]!, 10, 10, 0);
      expect(await queue.nextShardEvent('events-latest', 1000)).toMatchObject({ doneShards: 3, rows: 30 });
      expect(await queue.progress('events-latest')).toEqual({ shards: 3, doneShards: 3, rows: 30, failedJobs: 0 });
    } finally {
      await queue.close();
    }
  });

  it('wakes the waiting submitter as the shard is recorded, not at its timeout', async () => {
    const queue = await submitted('events-wake');
    const worker = new BatchQueue(redis.url);
    try {
      const started = Date.now();
      const event = queue.nextShardEvent('events-wake', 60_000);
      setTimeout(() => void worker.recordShard('events-wake', shards[0]!, 10, 10, 0), 100);
      expect(await event).toMatchObject({ doneShards: 1, rows: 10 });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it('a failed attempt wakes it with the queue count of failed shard jobs, so that it reads status()', async () => {
    const queue = await submitted('events-failed');
    const failed = queue.queue.toKey('failed');
    try {
      await queue.redis.zadd(failed, 1, 'events-failed_0-10');
      await queue.notify('events-failed');
      expect(await queue.nextShardEvent('events-failed', 1000)).toEqual({
        shards: 3,
        doneShards: 0,
        rows: 0,
        failedJobs: 1,
      });
    } finally {
      await queue.redis.zrem(failed, 'events-failed_0-10');
      await queue.close();
    }
  });

  it('a job submitted again starts without the events of its earlier run', async () => {
    const first = await submitted('events-again');
    await first.recordShard('events-again', shards[0]!, 10, 10, 0);
    await first.close();
    const again = await submitted('events-again');
    try {
      expect(await again.nextShardEvent('events-again', 50)).toBeUndefined();
    } finally {
      await again.close();
    }
  });

  it('a job submitted again queues the shards an earlier run left failed or completed, and leaves a waiting one be', async () => {
    const queue = new BatchQueue(redis.url);
    const spec = { id: 'resubmit', partsDir: '/nowhere/resubmit' } as unknown as BatchJobSpec;
    const wait = queue.queue.toKey('wait');
    try {
      await queue.submit(spec, shards, [], 30, 1);
      // As a worker leaves them: shard 0-10 failed for good, shard 0-20 completed (and kept).
      await queue.redis
        .multi()
        .lrem(wait, 0, 'resubmit_0-10')
        .zadd(queue.queue.toKey('failed'), 1, 'resubmit_0-10')
        .exec();
      await queue.redis
        .multi()
        .lrem(wait, 0, 'resubmit_0-20')
        .zadd(queue.queue.toKey('completed'), 1, 'resubmit_0-20')
        .exec();
      expect(await queue.queue.getJobState('resubmit_0-10')).toBe('failed');
      expect(await queue.queue.getJobState('resubmit_0-20')).toBe('completed');
      await queue.submit(spec, shards, [], 30, 1);
      for (const id of ['resubmit_0-0', 'resubmit_0-10', 'resubmit_0-20'])
        expect(await queue.queue.getJobState(id)).toBe('waiting');
      expect((await queue.redis.lrange(wait, 0, -1)).filter((id) => id.startsWith('resubmit_')).sort()).toEqual([
        'resubmit_0-0',
        'resubmit_0-10',
        'resubmit_0-20',
      ]);
    } finally {
      await queue.queue.drain();
      await queue.close();
    }
  });

  it('close() ends a wait at once', async () => {
    const queue = await submitted('events-close');
    const started = Date.now();
    const event = queue.nextShardEvent('events-close', 60_000);
    await new Promise((r) => setTimeout(r, 50));
    await queue.close();
    expect(await event).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
