/*
 * Online features benchmark (issue 5).
 *   node --import tsx bench/features.ts [--rate 5000] [--seconds 4] [--rounds 5] [--batch 64]
 * Starts a private redis-server on loopback, loads 10,000 users, then:
 *  1. Open-loop lookup-stage latency at a fixed request rate (single-row requests, random users), for
 *     the Redis store, the memory store and a bare ioredis PING (the loopback round-trip floor), in
 *     interleaved rounds. Latency is measured from each request's scheduled start, so a stalled loop
 *     counts against the figure (no coordinated omission).
 *  2. Batched lookup (one pipeline of HMGETs for a whole batch) vs one HMGET round trip per row.
 * Writes bench/results/features.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { EntityKeyTemplate } from '../src/features/entity-key.ts';
import type { FeatureFieldSpec, FeaturesSpec } from '../src/features/feature-config.ts';
import { FeatureStats } from '../src/features/feature-stats.ts';
import type { FeatureStore, FeatureVector } from '../src/features/feature-store.ts';
import { MemoryFeatureStore } from '../src/features/memory-feature-store.ts';
import { RedisFeatureStore } from '../src/features/redis-feature-store.ts';
import { FeatureLookup } from '../src/pipeline/feature-lookup.ts';
import { startPrivateRedis } from '../test/support/redis-server.ts';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '64' },
  },
});
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const BATCH = Number(args.batch);
const USERS = 10_000;

const fields: FeatureFieldSpec[] = [
  { name: 'user_txn_count', type: 'integer', default: 0 },
  { name: 'user_avg_amount', type: 'number', default: 0 },
];
const key = EntityKeyTemplate.parse('user:{user_id}', (e) => {
  throw new Error(e);
});
const spec = (timeoutMs: number): FeaturesSpec => ({
  store: { kind: 'redis', url: '' },
  key,
  fields,
  timeoutMs,
  onMissing: 'defaults',
});

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Runs `task` RATE times a second for SECONDS, open loop; returns each call's latency from its scheduled start (ms). */
async function openLoop(
  task: (i: number) => Promise<unknown>,
): Promise<{ p50: number; p99: number; p999: number; achievedRate: number; count: number }> {
  const total = Math.round(RATE * SECONDS);
  const latencies = new Float64Array(total);
  const interval = 1000 / RATE;
  const start = performance.now() + 5;
  let issued = 0;
  let finished = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      while (issued < total && start + issued * interval <= now) {
        const i = issued++;
        const scheduled = start + i * interval;
        task(i).then(
          () => {
            latencies[i] = performance.now() - scheduled;
            if (++finished === total) resolve();
          },
          (error: unknown) => {
            throw error;
          },
        );
      }
      if (issued < total) setImmediate(tick);
    };
    setImmediate(tick);
  });
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort();
  return {
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    p999: quantile(latencies, 0.999),
    achievedRate: total / elapsed,
    count: total,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

async function main(): Promise<void> {
  const redis = await startPrivateRedis();
  const client = new Redis(redis.url);
  const userId = (i: number): string => `u${(i * 7919) % USERS}`;
  try {
    let pipeline = client.pipeline();
    const rows: Record<string, unknown>[] = [];
    for (let u = 0; u < USERS; u++) {
      const count = 1 + (u % 97);
      const avg = 10 + (u % 400) * 1.25;
      pipeline.hset(`user:u${u}`, 'user_txn_count', count, 'user_avg_amount', avg);
      rows.push({ user_id: `u${u}`, user_txn_count: count, user_avg_amount: avg });
      if (u % 1000 === 999) {
        await pipeline.exec();
        pipeline = client.pipeline();
      }
    }
    await pipeline.exec();
    const memoryEntries = new Map<string, FeatureVector>(
      rows.map((r) => [key.build(r)!, [r.user_txn_count as number, r.user_avg_amount as number]]),
    );

    const redisStore = await RedisFeatureStore.connect(redis.url, fields);
    const memoryStore: FeatureStore = new MemoryFeatureStore(memoryEntries);
    const redisStage = new FeatureLookup(spec(100), redisStore, new FeatureStats('bench', 1));
    const memoryStage = new FeatureLookup(spec(100), memoryStore, new FeatureStats('bench', 1));
    const prefix = (): string => '';
    const stageTask = (stage: FeatureLookup) => (i: number) => stage.run([{ user_id: userId(i) }], prefix);
    const ping = (): Promise<unknown> => client.ping();

    // Warm-up.
    for (let i = 0; i < 2000; i++) await redisStage.run([{ user_id: userId(i) }], prefix);

    // 1. Stage latency at a fixed rate.
    const rounds: {
      redis: Awaited<ReturnType<typeof openLoop>>;
      memory: Awaited<ReturnType<typeof openLoop>>;
      ping: Awaited<ReturnType<typeof openLoop>>;
    }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const redisRun = await openLoop(stageTask(redisStage));
      const pingRun = await openLoop(ping);
      const memoryRun = await openLoop(stageTask(memoryStage));
      rounds.push({ redis: redisRun, memory: memoryRun, ping: pingRun });
      console.log(
        `round ${r + 1}: redis stage p50 ${redisRun.p50.toFixed(3)} p99 ${redisRun.p99.toFixed(3)} ms | PING p99 ${pingRun.p99.toFixed(3)} ms | memory stage p99 ${memoryRun.p99.toFixed(3)} ms | ${redisRun.achievedRate.toFixed(0)} req/s`,
      );
    }
    const stats = redisStage.stats.outcomes;

    // 2. Batched lookup vs one round trip per row.
    const batchRatios: number[] = [];
    const batchRuns: { batchedUs: number; perRowUs: number }[] = [];
    const reps = 200;
    for (let r = 0; r < ROUNDS; r++) {
      const keysOf = (rep: number): string[] =>
        Array.from({ length: BATCH }, (_, k) => `user:${userId(rep * BATCH + k)}`);
      let t = performance.now();
      for (let rep = 0; rep < reps; rep++) await redisStore.lookup(keysOf(rep), 1000);
      const batchedUs = ((performance.now() - t) / reps) * 1000;
      t = performance.now();
      for (let rep = 0; rep < reps; rep++) {
        for (const k of keysOf(rep)) await client.hmget(k, 'user_txn_count', 'user_avg_amount');
      }
      const perRowUs = ((performance.now() - t) / reps) * 1000;
      batchRuns.push({ batchedUs, perRowUs });
      batchRatios.push(perRowUs / batchedUs);
      console.log(
        `round ${r + 1}: batch of ${BATCH}: one pipeline ${batchedUs.toFixed(0)} µs vs one HMGET per row ${perRowUs.toFixed(0)} µs (${(perRowUs / batchedUs).toFixed(1)}x)`,
      );
    }

    const p99s = rounds.map((r) => r.redis.p99);
    const result = {
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        node: process.version,
        note: 'shared machine, other engineers running tests concurrently',
      },
      settings: { rate: RATE, seconds: SECONDS, rounds: ROUNDS, batch: BATCH, users: USERS, timeoutMs: 100 },
      stageLatency: {
        redisStageP50Ms: round(median(rounds.map((r) => r.redis.p50))),
        redisStageP99Ms: round(median(p99s)),
        redisStageP999Ms: round(median(rounds.map((r) => r.redis.p999))),
        pingP99Ms: round(median(rounds.map((r) => r.ping.p99))),
        memoryStageP99Ms: round(median(rounds.map((r) => r.memory.p99))),
        redisP99OverPingP99: round(median(rounds.map((r) => r.redis.p99 / r.ping.p99)), 2),
        redisP99OverMemoryP99: round(median(rounds.map((r) => r.redis.p99 / r.memory.p99)), 1),
        achievedRate: Math.round(median(rounds.map((r) => r.redis.achievedRate))),
        outcomes: stats,
      },
      batchedVsPerRow: {
        batch: BATCH,
        batchedUs: Math.round(median(batchRuns.map((b) => b.batchedUs))),
        perRowUs: Math.round(median(batchRuns.map((b) => b.perRowUs))),
        speedup: round(median(batchRatios), 1),
      },
      rounds,
    };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/features.json', `${JSON.stringify(result, null, 2)}\n`);
    console.log(
      JSON.stringify({ stageLatency: result.stageLatency, batchedVsPerRow: result.batchedVsPerRow }, null, 2),
    );
    await redisStage.close();
  } finally {
    client.disconnect();
    await redis.dispose();
  }
}

await main();
