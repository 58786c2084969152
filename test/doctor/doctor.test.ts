import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startModelServer } from '../../src/bench/model-server-process.ts';
import { inferencePath } from '../../src/bench/load-target.ts';
import { fetchServerStats } from '../../src/bench/server-stats.ts';
import type { StepResult } from '../../src/bench/bench-report.ts';
import type { RequestData } from '../../src/bench/request-data.ts';
import { diagnose } from '../../src/doctor/diagnosis.ts';
import { servedConfigKey } from '../../src/doctor/candidate-model.ts';
import { formatTrials, verdictLine, type DoctorReport, type RemedyTrial } from '../../src/doctor/doctor-report.ts';
import {
  MARGIN_FACTOR,
  marginLoad,
  P99_BEFORE_ANSWERS,
  P99_MIN_ANSWERS,
  p99WindowMs,
  repeatShareOf,
  runDoctor,
  searchBasis,
  searchDiagnosis,
} from '../../src/doctor/doctor-session.ts';
import { applyYamlEdits, unifiedDiff } from '../../src/doctor/model-change.ts';
import { REMEDIES, remediesFor, trialKey, type RemedyContext } from '../../src/doctor/remedy-catalogue.ts';
import {
  p99Interval,
  primeServer,
  profileOf,
  settleServer,
  stageMeanOf,
  type StageProfile,
} from '../../src/doctor/stage-profile.ts';
import { resolveModelSource } from '../../src/optimize/model-source.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startPrivateRedis } from '../support/redis-server.ts';
import { TempModelRepository } from '../support/temp-models.ts';
import {
  featureScoreModel,
  heavyMatMulModel,
  heavyRows,
  startDelayProxy,
  startServerBehindHold,
  startServerInProcess,
} from './doctor-fixtures.ts';

/**
 * caliper doctor on small models with one slow stage injected: a feature store reached through a proxy that holds
 * each lookup 60 ms, and a model whose cost is a heavy MatMul chain (~10 ms a request). Each run serves the model in
 * real `caliper serve` children, drives real load and reads real Server-Timing/statistics; windows are short.
 */
const exec = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/caliper.js');
const STORE_DELAY_MS = 60;
const USERS = 50;

const repo = new TempModelRepository();
const work = mkdtempSync(join(tmpdir(), 'caliper-doctor-test-'));
let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
let proxy: Awaited<ReturnType<typeof startDelayProxy>>;
let featureModelDir: string;

/** The feature-score model reading its store at `url`. */
const scoredConfig = (name: string, url: string) => ({
  name,
  inputs: { amount: { type: 'number', minimum: 0 }, user_id: { type: 'string', required: false } },
  features: {
    store: 'redis',
    url,
    key: 'user:{user_id}',
    fields: { user_score: { type: 'number', default: 0 } },
    timeout_ms: 1000,
  },
  preprocess: { tensor: 'features', columns: [{ identity: 'amount' }, { identity: 'user_score' }] },
  postprocess: { score: { output: 'score', index: 0 } },
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
});

/** A model folder as users write them: model.yaml in block style, 1/model.onnx. */
function addModel(folder: string, config: Record<string, unknown>, model: Parameters<TempModelRepository['add']>[2]) {
  const dir = repo.add(folder, config, model);
  writeFileSync(join(dir, 'model.yaml'), stringify(config));
  return dir;
}

const featureRequests: RequestData = {
  source: 'test users',
  documents: Array.from({ length: 400 }, (_, i) => ({ amount: (i % 37) + 1, user_id: `u${i % USERS}` })),
};

beforeAll(async () => {
  redis = await startPrivateRedis();
  const client = new Redis(redis.url);
  for (let u = 0; u < USERS; u++) await client.hset(`user:u${u}`, 'user_score', String(u / USERS));
  client.disconnect();
  proxy = await startDelayProxy(redis.port, STORE_DELAY_MS);
  featureModelDir = addModel('scored', scoredConfig('scored', `redis://127.0.0.1:${proxy.port}`), featureScoreModel());
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await redis?.dispose();
  repo.remove();
  rmSync(work, { recursive: true, force: true });
});

const heavyConfig = (name: string) => ({
  name,
  inputs: { x: { type: 'array', items: 'number', length: 64 } },
  preprocess: { tensor: 'x', columns: [{ identity: 'x' }] },
  postprocess: { class: { output: 'logits', argmax: true } },
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
});

function writeJsonl(file: string, rows: unknown[]): string {
  writeFileSync(file, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return file;
}

const trialOf = (report: DoctorReport, id: string) => {
  const trial = report.trials.find((t) => t.remedy === id);
  if (!trial) throw new Error(`no trial ${id} in ${JSON.stringify(report.trials.map((t) => t.remedy))}`);
  return trial;
};

describe('diagnosis and remedy order (figures given)', () => {
  const profile = (tail: Record<string, number>, p99: number): StageProfile => ({
    load: { mode: 'concurrency', concurrency: 1 },
    measuredS: 3,
    requests: 100,
    errors: 0,
    throughput: 10,
    latencyMs: { p50: p99 / 2, p90: p99, p99, max: p99 },
    meanMs: tail,
    tailMs: tail,
    tailRequests: 5,
    cacheHitShare: 0,
    meanBatchSize: 1,
  });

  it("names the stages holding at least a quarter of the tail's time, largest first: the seed's table", () => {
    // The seed's fraud service: preprocess 15, features 20, inference 30, postprocess 5 against 50 ms.
    const seed = diagnose(profile({ preprocess: 15, features: 20, inference: 30, postprocess: 5 }, 70), 50);
    expect(seed.met).toBe(false);
    expect(seed.overByMs).toBe(20);
    expect(seed.culprits).toEqual(['inference', 'features']);
    expect(seed.findings[0]).toMatch(/^inference takes 30\.00 ms of the p99 tail \(43%/);
    expect(diagnose(profile({ inference: 30 }, 35), 50)).toMatchObject({ met: true, culprits: [] });
  });

  it('searches on while p99 is within the budget by less than 20%: the budget is judged later, over longer windows', () => {
    const close = profile({ features: 5, inference: 40 }, 45);
    expect(diagnose(close, 50).met).toBe(true);
    // 45 ms against 50 is met, but a p99 that close misses on the next run about as often: the search goes on.
    expect(searchDiagnosis(close, 50)).toMatchObject({ met: false, culprits: ['inference'] });
    expect(searchDiagnosis(profile({ inference: 35 }, 39), 50)).toMatchObject({ met: true, culprits: [] });
  });

  it('orders the inference remedies by expected gain: INT8 static, INT8 dynamic, threads, instances, batching, FP16', () => {
    const context = { cores: 2, repeatShare: 0 } as RemedyContext;
    expect(remediesFor('inference', context).map((r) => r.id)).toEqual([
      'int8-static',
      'int8-dynamic',
      'intra-op-threads',
      'instances-inference',
      'batching-inference',
      'fp16',
    ]);
    // Time outside the server's stages: the remedies that raise capacity, batching first when the server fell behind
    // the offered rate (answered under 97% of it), the worker instance first when it kept up.
    const inThread = (throughput: number) =>
      ({
        ...context,
        config: { instances: { kind: 'in_thread' }, batching: { enabled: false, maxBatchSize: 1 } },
        profile: { load: { mode: 'rate', rate: 100 }, throughput },
      }) as RemedyContext;
    expect(remediesFor('network', inThread(99)).map((r) => r.id)).toEqual([
      'worker-instance',
      'batching-network',
      'instances-network',
    ]);
    expect(remediesFor('network', inThread(90)).map((r) => r.id)).toEqual([
      'batching-network',
      'worker-instance',
      'instances-network',
    ]);
    expect(remediesFor('features', { ...context, featureRedis: 'redis://x' }).map((r) => r.id)).toEqual([
      'features-redis',
      'features-timeout',
      'features-batched-lookups',
    ]);
  });

  it('estimates the response cache hit rate from the request sample and tries the cache only when it repeats', async () => {
    const sample = { source: 's', documents: [{ a: 1 }, { a: 2 }, { a: 1 }, { a: 1 }] };
    expect(repeatShareOf(sample)).toEqual({ distinct: 2, share: 0.5 });
    const cache = REMEDIES.find((r) => r.id === 'response-cache')!;
    const context = (repeatShare: number, enabled: boolean) =>
      ({ repeatShare, distinctRequests: 2, config: { cache: { enabled } } }) as RemedyContext;
    expect(await cache.plan(context(0.5, false))).toMatchObject({
      kind: 'try',
      change: {
        edits: [
          { path: ['cache', 'enabled'], value: true },
          { path: ['cache', 'max_entries'], value: 1000 },
        ],
      },
      detail: expect.stringContaining('estimated hit rate 50%'),
    });
    expect(await cache.plan(context(0.01, false))).toMatchObject({ kind: 'skip' });
    expect(await cache.plan(context(0.5, true))).toMatchObject({
      kind: 'skip',
      reason: 'the response cache is on already',
    });
    // A hit is answered at the cache stage: it skips preprocess, the queue, inference and postprocess, not the stages
    // before the cache (validate with its hook, features) nor the time outside the server.
    const repeats = {
      cores: 2,
      repeatShare: 0.5,
      config: { instances: { kind: 'worker' }, batching: { enabled: false, maxBatchSize: 1 } },
      profile: { load: { mode: 'rate', rate: 100 }, throughput: 99 },
    };
    for (const stage of ['preprocess', 'queue', 'inference', 'postprocess'] as const)
      expect(remediesFor(stage, repeats as unknown as RemedyContext).map((r) => r.id)).toContain('response-cache');
    for (const stage of ['validate', 'features', 'cache', 'network'] as const)
      expect(remediesFor(stage, repeats as unknown as RemedyContext).map((r) => r.id)).not.toContain('response-cache');
    expect(
      remediesFor('postprocess', { ...repeats, repeatShare: 0 } as unknown as RemedyContext).map((r) => r.id),
    ).toEqual([]);
  });

  it('prefers the batch sizes the batcher forms under the load, and says the Redis store batches lookups already', async () => {
    const preferred = REMEDIES.find((r) => r.id === 'preferred-batch-sizes')!;
    const context = (meanBatchSize: number | null, preferredBatchSizes: number[] = []) =>
      ({
        config: { batching: { enabled: true, maxBatchSize: 32, preferredBatchSizes } },
        profile: { meanBatchSize },
      }) as unknown as RemedyContext;
    expect(await preferred.plan(context(5.3))).toMatchObject({
      kind: 'try',
      change: { edits: [{ path: ['batching', 'preferred_batch_sizes'], value: [2, 4] }] },
      detail: expect.stringContaining('mean batch 5.30 measured'),
    });
    expect(await preferred.plan(context(1.2))).toMatchObject({ kind: 'skip' });
    expect(await preferred.plan(context(9, [8]))).toMatchObject({ kind: 'skip' });
    const unbatched = { config: { batching: { enabled: false, maxBatchSize: 1 } } } as unknown as RemedyContext;
    expect(remediesFor('queue', unbatched).map((r) => r.id)).not.toContain('preferred-batch-sizes');
    const lookups = REMEDIES.find((r) => r.id === 'features-batched-lookups')!;
    const redisStore = { config: { features: { store: { kind: 'redis', url: 'redis://x' } } } } as RemedyContext;
    expect(await lookups.plan(redisStore)).toMatchObject({ kind: 'skip', reason: expect.stringContaining('pipeline') });
  });

  it('tries the capacity remedies once more when batching is on, then a longer delay and preferred sizes', async () => {
    const batched = (maxQueueDelayUs: number | 'auto', enabled = true, maxBatchSize = 32) =>
      ({
        cores: 2,
        repeatShare: 0,
        budgetMs: 10,
        config: {
          instances: { kind: 'in_thread', count: 1, intraOpThreads: 1 },
          batching: { enabled, maxBatchSize, maxQueueDelayUs, preferredBatchSizes: [] },
        },
        profile: { load: { mode: 'rate', rate: 100 }, throughput: 99, meanBatchSize: 2.5 },
      }) as unknown as RemedyContext;
    // Batching on: batching itself is done; the worker instance and instances again (as new trials), then the delay.
    expect(remediesFor('network', batched(200)).map((r) => r.id)).toEqual([
      'worker-instance',
      'batching-delay-longer',
      'instances-network',
      'preferred-batch-sizes-network',
    ]);
    const byId = (id: string) => REMEDIES.find((r) => r.id === id)!;
    const config = (context: RemedyContext) => context.config;
    for (const id of ['worker-instance', 'instances-network', 'instances-queue', 'intra-op-threads']) {
      expect(trialKey(byId(id), config(batched(200)))).toBe(`${id}+batching`);
      expect(trialKey(byId(id), config(batched(200, false)))).toBe(id);
      expect(trialKey(byId(id), config(batched(200, true, 1)))).toBe(id);
    }
    for (const id of ['batching-network', 'batching-delay-longer', 'preferred-batch-sizes', 'int8-dynamic', 'warmup'])
      expect(trialKey(byId(id), config(batched(200)))).toBe(id);
    // Fourfold, at most 10% of the budget (10 ms → 1000 µs; 3 ms → 300 µs), from 100 µs when there was no delay.
    const longer = byId('batching-delay-longer');
    expect(await longer.plan(batched(200))).toEqual({
      kind: 'try',
      change: { edits: [{ path: ['batching', 'max_queue_delay_us'], value: 800 }] },
      detail: 'batching.max_queue_delay_us 200 → 800 (mean batch 2.50 measured)',
    });
    expect(await longer.plan(batched(400))).toMatchObject({
      change: { edits: [{ path: ['batching', 'max_queue_delay_us'], value: 1000 }] },
    });
    expect(await longer.plan({ ...batched(200), budgetMs: 3 })).toMatchObject({
      change: { edits: [{ path: ['batching', 'max_queue_delay_us'], value: 300 }] },
    });
    expect(await longer.plan(batched(0))).toMatchObject({
      change: { edits: [{ path: ['batching', 'max_queue_delay_us'], value: 100 }] },
    });
    expect(await longer.plan(batched(1000))).toEqual({
      kind: 'skip',
      reason: 'batching.max_queue_delay_us 1000 is 10% of the budget or more already',
    });
    expect(await longer.plan(batched('auto'))).toMatchObject({ kind: 'skip', reason: expect.stringContaining('auto') });
    expect(longer.expectedGain(batched(200, false))).toBe(0);
    expect(longer.expectedGain(batched(200, true, 1))).toBe(0);
    expect(await byId('preferred-batch-sizes-network').plan(batched(200))).toMatchObject({
      kind: 'try',
      change: { edits: [{ path: ['batching', 'preferred_batch_sizes'], value: [2] }] },
    });
  });

  it('judges p99 over at least 500 answers in open loop, and searches on from the worse of verdict and side by side', () => {
    // 20 requests/s over 3 windows: 500 answers need 8.4 s windows (504 answers); 2000/s fill 2 s windows many times.
    expect(P99_MIN_ANSWERS).toBe(500);
    expect(p99WindowMs({ mode: 'rate', rate: 20 }, 2000)).toBe(8400);
    expect(p99WindowMs({ mode: 'rate', rate: 20 }, 9000)).toBe(9000);
    expect(p99WindowMs({ mode: 'rate', rate: 10 }, 2000)).toBe(16_700);
    expect(p99WindowMs({ mode: 'rate', rate: 10 }, 2000, 5)).toBe(10_000);
    expect(p99WindowMs({ mode: 'rate', rate: 2000 }, 2000)).toBe(2000);
    expect(p99WindowMs({ mode: 'concurrency', concurrency: 1 }, 600)).toBe(600);
    // The "before", compared with a separate bench, over at least 1000 answers: 16.7 s windows at 20 requests/s.
    expect(P99_BEFORE_ANSWERS).toBe(1000);
    expect(p99WindowMs({ mode: 'rate', rate: 20 }, 2000, 3, P99_BEFORE_ANSWERS)).toBe(16_700);
    expect(p99WindowMs({ mode: 'concurrency', concurrency: 2 }, 600, 3, P99_BEFORE_ANSWERS)).toBe(600);
    // p99's 95% interval by order statistics: 1000 answers, the 18th- to the 4th-slowest; 500, the 11th-slowest to the
    // slowest; 100, the 4th-slowest to the slowest.
    const ascending = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    expect(p99Interval(ascending(1000))).toEqual({ low: 983, high: 997 });
    expect(p99Interval(ascending(500))).toEqual({ low: 490, high: 500 });
    expect(p99Interval(ascending(100))).toEqual({ low: 97, high: 100 });
    expect(p99Interval([4.5])).toEqual({ low: 4.5, high: 4.5 });
    expect(p99Interval([])).toBeUndefined();
    // A profile's interval reads the answers that came while the generator ran, not a backlog draining after it.
    const step = {
      requests: 100,
      errors: { total: 0 },
      throughput: 50,
      latencyMs: { p50: 50, p90: 90, p99: 99, max: 100 },
    } as unknown as StepResult;
    const samples = [
      ...ascending(100).map((latencyMs) => ({ latencyMs, at: 1000, stages: {} })),
      ...ascending(50).map((i) => ({ latencyMs: 7000 + i, at: 3000, stages: {} })),
    ];
    const load = { mode: 'rate', rate: 50 } as const;
    expect(profileOf({ step, samples, measuredMs: 2000, endedAt: 2000 }, load).p99IntervalMs).toEqual({
      low: 97,
      high: 100,
    });
    expect(profileOf({ step, samples, measuredMs: 2000 }, load).p99IntervalMs!.low).toBeGreaterThan(7000);
    const verdict = profile({ network: 5 }, 6.7);
    const sideBySide = profile({ network: 12 }, 14.2);
    expect(searchBasis(verdict, sideBySide)).toBe(sideBySide);
    expect(searchBasis(verdict, undefined)).toBe(verdict);
    expect(searchBasis(sideBySide, verdict)).toBe(sideBySide);
    expect(searchBasis(verdict, profile({ network: 5 }, 6.7))).toBe(verdict);
  });

  it("gives each stage's mean with its 95% interval from the answers, as caliper bench gives it", () => {
    const sample = (inference: number, features?: number) => ({
      latencyMs: inference + 1,
      at: 1000,
      stages: { inference, ...(features !== undefined ? { features } : {}) },
    });
    const samples = [sample(1, 20), sample(2, 20), sample(3), sample(4)];
    // inference 1, 2, 3, 4: mean 2.5 ± 1.96·√(5/12); features 20, 20 and two answers that skipped it (0), as the
    // stage means and caliper bench count them: 10 ± 1.96·√(400/3/4).
    expect(stageMeanOf(samples, 'inference')).toEqual({
      meanMs: 2.5,
      interval: { low: 1.2348, high: 3.7652 },
      answers: 4,
    });
    expect(stageMeanOf(samples, 'features')).toEqual({
      meanMs: 10,
      interval: { low: -1.3161, high: 21.3161 },
      answers: 4,
    });
    expect(stageMeanOf([sample(5)], 'inference')).toEqual({ meanMs: 5, interval: undefined, answers: 1 });
    expect(stageMeanOf(samples, 'queue')).toBeUndefined();
    const step = {
      requests: 4,
      errors: { total: 0 },
      throughput: 4,
      latencyMs: { p50: 3, p90: 5, p99: 5, max: 5 },
    } as unknown as StepResult;
    const load = { mode: 'rate', rate: 4 } as const;
    const profile = profileOf({ step, samples, measuredMs: 1000 }, load);
    expect(profile.meanMs).toMatchObject({ inference: 2.5, features: 10 });
    expect(profile.meanIntervalMs).toEqual({
      features: { low: -1.3161, high: 21.3161 },
      inference: { low: 1.2348, high: 3.7652 },
    });
  });

  it('measures the margin at 1.1 times the load: the rate, or at least one connection more; 1 measures the load again', () => {
    expect(MARGIN_FACTOR).toBe(1.1);
    expect(marginLoad({ mode: 'rate', rate: 2968 })).toEqual({ mode: 'rate', rate: 3264.8 });
    expect(marginLoad({ mode: 'rate', rate: 20 })).toEqual({ mode: 'rate', rate: 22 });
    expect(marginLoad({ mode: 'rate', rate: 20 }, 1.5)).toEqual({ mode: 'rate', rate: 30 });
    expect(marginLoad({ mode: 'rate', rate: 7 }, 1.001)).toEqual({ mode: 'rate', rate: 7.01 });
    expect(marginLoad({ mode: 'concurrency', concurrency: 1 })).toEqual({ mode: 'concurrency', concurrency: 2 });
    expect(marginLoad({ mode: 'concurrency', concurrency: 9 })).toEqual({ mode: 'concurrency', concurrency: 10 });
    expect(marginLoad({ mode: 'concurrency', concurrency: 20 })).toEqual({ mode: 'concurrency', concurrency: 22 });
    expect(marginLoad({ mode: 'concurrency', concurrency: 21 })).toEqual({ mode: 'concurrency', concurrency: 24 });
    expect(marginLoad({ mode: 'concurrency', concurrency: 4 }, 1)).toEqual({ mode: 'concurrency', concurrency: 4 });
    expect(marginLoad({ mode: 'rate', rate: 50 }, 1)).toEqual({ mode: 'rate', rate: 50 });
    expect(() => marginLoad({ mode: 'rate', rate: 50 }, 0.9)).toThrow(
      '--margin: expected a factor of the load >= 1, got 0.9',
    );
    expect(() => marginLoad({ mode: 'rate', rate: 50 }, Number.NaN)).toThrow('--margin');
  });

  it('closes with the verdict: the measurement judged, the kept remedies, and what is left when the budget is missed', () => {
    const judged = (p99: number) => ({
      profile: profile({ network: p99 }, p99),
      diagnosis: diagnose(profile({ network: p99 }, p99), 10),
    });
    const report = {
      budgetMs: 10,
      before: judged(20),
      trials: [
        { remedy: 'batching-network', outcome: 'kept' },
        { remedy: 'worker-instance', outcome: 'dropped' },
        { remedy: 'warmup', outcome: 'kept' },
      ],
      advice: [],
    } as unknown as DoctorReport;
    expect(verdictLine({ ...report, met: true, after: judged(7.25) })).toBe(
      'budget met: p99 7.25 ms within 10 ms, measured again on a fresh server with batching-network, warmup over 3 s (100 answers)',
    );
    expect(verdictLine({ ...report, met: false, after: judged(14.9), advice: ['network: more cores'] })).toBe(
      'budget not met: p99 14.90 ms over 10 ms, measured again on a fresh server with batching-network, warmup over 3 s (100 answers); no remedy left to try for network brings it under (the remedies table says what each did, the advice what is left to do)',
    );
    // With the margin: met at the load and at 1.1 times it, or met at the load only (not accepted).
    const withMargin = (p99: number, marginP99: number) => ({
      ...judged(p99),
      margin: {
        load: { mode: 'rate' as const, rate: 3264.8 },
        profile: { ...profile({ network: marginP99 }, marginP99), requests: 58_000 },
        diagnosis: diagnose(profile({ network: marginP99 }, marginP99), 10),
      },
    });
    const atRate = { ...report, load: { mode: 'rate' as const, rate: 2968 } };
    expect(verdictLine({ ...atRate, met: true, after: withMargin(7.25, 9.5) })).toBe(
      'budget met: p99 7.25 ms within 10 ms at 2968 requests/s, and p99 9.50 ms at 3264.8 requests/s (the margin, 58000 answers), measured again on a fresh server with batching-network, warmup over 3 s (100 answers)',
    );
    expect(verdictLine({ ...atRate, met: false, after: withMargin(7.25, 31.2), advice: ['network: more cores'] })).toBe(
      'budget not met with a margin: p99 7.25 ms within 10 ms at 2968 requests/s but 31.20 ms at 3264.8 requests/s (the margin, 58000 answers), measured again on a fresh server with batching-network, warmup over 3 s (100 answers); so near capacity the next run at 2968 requests/s may miss it, and no remedy left to try for network brings the margin under (the remedies table says what each did, the advice what is left to do)',
    );
    expect(verdictLine({ ...report, trials: [], met: false })).toBe(
      'budget not met: p99 20.00 ms over 10 ms, as served, no remedy kept; no remedy left to try for network brings it under (the remedies table says what each did)',
    );
    // As served, within the budget: with the margin measured on the same server, met or not with it.
    const served = (marginP99: number) => ({ ...atRate, trials: [], before: withMargin(7.25, marginP99) });
    expect(verdictLine({ ...served(9.5), met: true })).toBe(
      'budget met: p99 7.25 ms within 10 ms at 2968 requests/s, and p99 9.50 ms at 3264.8 requests/s (the margin, 58000 answers), as served: it meets the budget already, with the margin',
    );
    expect(verdictLine({ ...served(31.2), met: false })).toMatch(
      /^budget not met with a margin: p99 7\.25 ms within 10 ms at 2968 requests\/s but 31\.20 ms at 3264\.8 requests\/s \(the margin, 58000 answers\), as served, no remedy kept; so near capacity/,
    );
  });

  it('names the remedies skipped once --budget-minutes is spent on one line of the table, where the first was', () => {
    const trial = (remedy: string, outcome: RemedyTrial['outcome'], spent: boolean): RemedyTrial => ({
      remedy,
      stage: 'inference',
      title: remedy,
      outcome,
      detail: spent ? '--budget-minutes 1 spent' : 'instances.intra_op_threads 1 → 2',
      p99BeforeMs: 12,
      p99AfterMs: outcome === 'kept' ? 9 : null,
      ...(spent ? { budgetSpent: true as const } : {}),
      seconds: 0,
    });
    const lines = formatTrials([
      trial('intra-op-threads', 'kept', false),
      trial('instances-inference', 'skipped', true),
      trial('fp16', 'skipped', false),
      trial('batching-inference', 'skipped', true),
    ]).split('\n');
    expect(lines).toEqual([
      `${'remedy'.padEnd(22)} ${'stage'.padEnd(11)} ${'outcome'.padEnd(8)} ${'p99 ms'.padStart(16)}  detail`,
      `${'intra-op-threads'.padEnd(22)} ${'inference'.padEnd(11)} ${'kept'.padEnd(8)} ${'12.00 → 9.00'.padStart(16)}  instances.intra_op_threads 1 → 2`,
      'not tried, time budget spent: instances-inference, batching-inference',
      `${'fp16'.padEnd(22)} ${'inference'.padEnd(11)} ${'skipped'.padEnd(8)} ${'-'.padStart(16)}  instances.intra_op_threads 1 → 2`,
    ]);
  });

  it('edits model.yaml keeping its comments and style, and prints the change as a unified diff', () => {
    const text = '# the model\nname: m\ntags: [a, b]\ninstances: { count: 1, intra_op_threads: 1 } # one\n';
    const edited = applyYamlEdits(text, [{ path: ['instances', 'intra_op_threads'], value: 2 }]);
    expect(edited).toBe('# the model\nname: m\ntags: [a, b]\ninstances: { count: 1, intra_op_threads: 2 } # one\n');
    expect(applyYamlEdits(text, [{ path: ['cache', 'enabled'], value: true }])).toBe(
      `${text}cache:\n  enabled: true\n`,
    );
    expect(unifiedDiff(text, edited, 'a', 'b')).toContain(
      '-instances: { count: 1, intra_op_threads: 1 } # one\n+instances: { count: 1, intra_op_threads: 2 } # one',
    );
  });
});

describe('caliper doctor on served models', () => {
  it('names the features stage behind a slow store, serves them from a near Redis and verifies it by re-measuring', async () => {
    // Each server's start and stop, in order: a server done with stops while the next one starts.
    const events: string[] = [];
    let started = 0;
    const startServer = async (dir: string) => {
      const id = ++started;
      events.push(`start ${id}`);
      const server = await startServerInProcess(dir);
      return {
        url: server.url,
        stop: async () => {
          events.push(`stop ${id}`);
          await server.stop();
          events.push(`stopped ${id}`);
        },
      };
    };
    const report = await runDoctor({
      model: featureModelDir,
      budgetMs: 40,
      load: { mode: 'concurrency', concurrency: 2 },
      data: featureRequests,
      featureRedis: `${redis.url}/1`,
      remedies: ['features-redis'],
      windowMs: 300,
      startServer,
    });
    // Served as is (1), with the near Redis (2), then afresh for the verdict (3), which starts while 2 stops; all
    // three have exited when the doctor returns.
    expect(events.filter((e) => e.startsWith('start '))).toEqual(['start 1', 'start 2', 'start 3']);
    expect(events.indexOf('start 3')).toBeLessThan(events.indexOf('stopped 2'));
    expect(events.indexOf('stop 2')).toBeLessThan(events.indexOf('start 3'));
    expect(events.filter((e) => e.startsWith('stopped ')).sort()).toEqual(['stopped 1', 'stopped 2', 'stopped 3']);
    expect(report.before.diagnosis.culprits[0]).toBe('features');
    expect(report.before.profile.tailMs.features).toBeGreaterThanOrEqual(STORE_DELAY_MS * 0.9);
    const trial = trialOf(report, 'features-redis');
    expect(trial.outcome).toBe('kept');
    expect(trial.detail).toContain(`${USERS} entities copied`);
    expect(trial.p99AfterMs!).toBeLessThan(trial.p99BeforeMs! * 0.9);
    // Measured again on a fresh server: the features stage no longer waits for the proxy.
    // (Half the proxy's delay at least: on a machine short of CPU, waits for the event loop land in this stage too.)
    expect(report.after!.profile.meanMs.features!).toBeLessThan(
      report.before.profile.meanMs.features! - STORE_DELAY_MS / 2,
    );
    expect(report.after!.profile.latencyMs.p99).toBeLessThan(report.before.profile.latencyMs.p99);
    // The budget is judged over longer windows than the comparison's rounds: 3 windows of 3 × 0.3 s against 2 of 0.3.
    expect(trial.profile!.measuredS).toBe(0.6);
    expect(report.after!.profile.measuredS).toBe(2.7);
    expect(report.changes.yamlDiff).toContain(`+  url: ${redis.url}/1`);
    // The values really are in the near Redis (database 1), copied from the slow one.
    const near = new Redis(`${redis.url}/1`);
    expect(await near.hget('user:u7', 'user_score')).toBe(String(7 / USERS));
    near.disconnect();
  }, 120_000);

  it('accepts a kept set only when it also meets the budget at a higher load (the margin), searching on at that load', async () => {
    // The servers, in the order doctor starts them, answer through a link with one lane that holds each request this
    // long (ms; 0: no link): at one connection an answer takes the hold, at four (the margin, 4 times the load) about
    // four holds, each request waiting for the others' (startHoldLink), so every verdict is forced, whatever the
    // machine's speed. The "before" 225 (over the search's aim, 120; each comparison round, 150 ms of re-warm and a
    // 150 ms window, holds its first answer); the worker instance 0 (kept); its judgement 50: within 150 at one
    // connection, about 200 at four, not accepted; at the margin's load batching 0 (kept); the judgement with both 0.
    // Served in the test's process: the links decide every verdict.
    const budgetMs = 150;
    const dir = addModel('margin', heavyConfig('margin'), heavyMatMulModel({ rows: 8, width: 16, lossy: false }));
    const run = async (remedies: string[], holds: number[]) => {
      const lines: string[] = [];
      let started = 0;
      const report = await runDoctor({
        model: dir,
        budgetMs,
        load: { mode: 'concurrency', concurrency: 1 },
        margin: 4,
        data: { source: 'rows', documents: heavyRows(50, 14).map(({ x }) => ({ x })) },
        remedies,
        windowMs: 150,
        onProgress: (line) => lines.push(line),
        startServer: (modelDir) => startServerBehindHold(modelDir, holds[started++] ?? 0, { oneLane: true }),
      });
      return { report, lines, started };
    };
    // The worker instance alone: within the budget at one connection, over it at four. Not accepted, and no remedy
    // allowed is left for the margin: the verdict says so.
    const once = await run(['worker-instance'], [225, 0, 50]);
    expect(once.started).toBe(3);
    expect(once.report.before.profile.latencyMs.p99).toBeGreaterThan(budgetMs);
    expect(trialOf(once.report, 'worker-instance').outcome).toBe('kept');
    expect(once.report.judgements).toHaveLength(1);
    const [judged] = once.report.judgements!;
    expect(judged!.kept).toEqual(['worker-instance']);
    expect(judged!.p99Ms).toBeLessThanOrEqual(budgetMs);
    expect(judged!.marginP99Ms!).toBeGreaterThan(budgetMs);
    expect(judged!.marginRequests!).toBe(once.report.after!.margin!.profile.requests);
    expect(judged!.accepted).toBe(false);
    expect(once.report.after!.diagnosis.met).toBe(true);
    expect(once.report.after!.margin!.load).toEqual({ mode: 'concurrency', concurrency: 4 });
    expect(once.report.after!.margin!.diagnosis.met).toBe(false);
    expect(once.report.met).toBe(false);
    expect(once.lines.at(-1)).toMatch(
      /^\[\d+\/\d+\] re-measured with 1 kept remedies on a fresh server over .* \(\d+ answers\): p99 \d+\.\d\d ms \(within the 150 ms budget[^)]*\)(; side by side \d+\.\d\d ms)?; at 4 connections \(the margin\) p99 \d+\.\d\d ms over \d+ answers: not accepted, searching on at that load {2}\(/,
    );
    expect(verdictLine(once.report)).toMatch(
      /^budget not met with a margin: p99 \d+\.\d\d ms within 150 ms at 1 connection but \d+\.\d\d ms at 4 connections \(the margin, \d+ answers\), measured again on a fresh server with worker-instance over .*; so near capacity the next run at 1 connection may miss it, and no remedy left to try for network brings the margin under/,
    );
    // With batching allowed as well: the search goes on at the margin's load, where batching is measured (against the
    // judged server, whose four connections wait about 200 ms) and kept; judged again, the set meets the budget at
    // both loads and is accepted, and only that judgement is.
    const both = await run(['worker-instance', 'batching-network'], [225, 0, 50, 0, 0]);
    expect(both.started).toBe(5);
    expect(both.report.judgements).toMatchObject([
      { kept: ['worker-instance'], accepted: false },
      { kept: ['worker-instance', 'batching-network'], accepted: true },
    ]);
    const [first, last] = both.report.judgements!;
    expect(first!.p99Ms).toBeLessThanOrEqual(budgetMs);
    expect(first!.marginP99Ms!).toBeGreaterThan(budgetMs);
    const batching = trialOf(both.report, 'batching-network');
    expect(batching.outcome).toBe('kept');
    expect(batching.profile!.load).toEqual({ mode: 'concurrency', concurrency: 4 });
    expect(batching.p99BeforeMs!).toBeGreaterThan(budgetMs);
    expect(last!.p99Ms).toBeLessThanOrEqual(budgetMs);
    expect(last!.marginP99Ms!).toBeLessThanOrEqual(budgetMs);
    expect(both.report.met).toBe(true);
    expect(both.report.after!.profile.latencyMs.p99).toBe(last!.p99Ms);
    expect(both.report.after!.margin!.profile.latencyMs.p99).toBe(last!.marginP99Ms);
    expect(
      both.lines.filter((l) => / \(the margin\) p99 .*: not accepted, searching on at that load/.test(l)),
    ).toHaveLength(1);
    expect(both.lines.at(-1)).toMatch(
      / at 4 connections \(the margin\) p99 \d+\.\d\d ms over \d+ answers: accepted {2}\(/,
    );
    expect(verdictLine(both.report)).toMatch(
      /^budget met: p99 \d+\.\d\d ms within 150 ms at 1 connection, and p99 \d+\.\d\d ms at 4 connections \(the margin, \d+ answers\), measured again on a fresh server with worker-instance, batching-network over /,
    );
  }, 120_000);

  it('says a served model within the budget meets it only when it also does at the margin, measured before saying so', async () => {
    // As served, no link: within 150 ms at one connection and at four (the margin). Through a one-lane link of 50 ms:
    // about 55 ms at one connection, about 200 at four: not met, and the search starts at the margin's load (no remedy
    // allowed here, so the verdict says so). One server each, in the test's process.
    const dir = addModel('as-served', heavyConfig('as-served'), heavyMatMulModel({ rows: 8, width: 16, lossy: false }));
    const run = async (hold: number) => {
      const lines: string[] = [];
      let started = 0;
      const report = await runDoctor({
        model: dir,
        budgetMs: 150,
        load: { mode: 'concurrency', concurrency: 1 },
        margin: 4,
        data: { source: 'rows', documents: heavyRows(50, 15).map(({ x }) => ({ x })) },
        remedies: [],
        windowMs: 150,
        onProgress: (line) => lines.push(line),
        startServer: (modelDir) => {
          started++;
          return startServerBehindHold(modelDir, hold, { oneLane: true });
        },
      });
      return { report, lines, started };
    };
    const fast = await run(0);
    expect(fast.started).toBe(1);
    expect(fast.report.before.diagnosis.met).toBe(true);
    expect(fast.report.before.margin!.load).toEqual({ mode: 'concurrency', concurrency: 4 });
    expect(fast.report.before.margin!.diagnosis.met).toBe(true);
    expect(fast.report.met).toBe(true);
    expect(fast.report.after).toBeUndefined();
    expect(fast.lines[0]).toMatch(
      /^\[1\/\d+\] diagnosis: p99 \d+\.\d\d ms \(budget 150 ms\), met; at 4 connections \(the margin\) p99 \d+\.\d\d ms over \d+ answers: met with the margin as served {2}\(/,
    );
    expect(verdictLine(fast.report)).toMatch(
      /^budget met: p99 \d+\.\d\d ms within 150 ms at 1 connection, and p99 \d+\.\d\d ms at 4 connections \(the margin, \d+ answers\), as served: it meets the budget already, with the margin$/,
    );
    const lane = await run(50);
    expect(lane.started).toBe(1);
    expect(lane.report.before.diagnosis.met).toBe(true);
    expect(lane.report.before.margin!.profile.latencyMs.p99).toBeGreaterThan(150);
    expect(lane.report.before.margin!.diagnosis.met).toBe(false);
    expect(lane.report.met).toBe(false);
    expect(lane.lines[0]).toMatch(
      / at 4 connections \(the margin\) p99 \d+\.\d\d ms over \d+ answers: not with the margin, searching at that load {2}\(/,
    );
    expect(verdictLine(lane.report)).toMatch(
      /^budget not met with a margin: p99 \d+\.\d\d ms within 150 ms at 1 connection but \d+\.\d\d ms at 4 connections \(the margin, \d+ answers\), as served, no remedy kept; so near capacity the next run at 1 connection may miss it/,
    );
  }, 60_000);

  it('keeps the set accepted before when a later judgement, with more remedies kept for headroom, misses', async () => {
    const dir = addModel('headroom', heavyConfig('headroom'), heavyMatMulModel({ rows: 64, width: 256, lossy: false }));
    // The servers, in the order doctor starts them, answer through links that hold each request this long (ms): the
    // "before" 520 (over the budget); worker instance 0 (kept); its judgement 405 (within 500 but not 20%
    // under it, and at the margin: accepted; a stall of up to 95 ms leaves it so, where 55 ms of slack failed once with
    // two busy loops beside the run); batching 0 (kept, for headroom); the judgement with both 550 (missed). Served in
    // the test's process: the links decide every verdict. Each comparison round of the "before" (300 ms of re-warm,
    // then a 350 ms window) holds its first answer.
    const budgetMs = 500;
    const links = [520, 0, 405, 0, 550];
    let started = 0;
    const startServer = (modelDir: string) => startServerBehindHold(modelDir, links[started++] ?? 0);
    const lines: string[] = [];
    const report = await runDoctor({
      model: dir,
      budgetMs,
      load: { mode: 'concurrency', concurrency: 1 },
      data: { source: 'rows', documents: heavyRows(50, 13).map(({ x }) => ({ x })) },
      remedies: ['worker-instance', 'batching-network'],
      windowMs: 350,
      startServer,
      onProgress: (line) => lines.push(line),
    });
    expect(started).toBe(5);
    expect(report.judgements, JSON.stringify(report.judgements)).toMatchObject([
      { kept: ['worker-instance'], accepted: true },
      { kept: ['worker-instance', 'batching-network'], accepted: false },
    ]);
    expect(report.judgements![1]!.p99Ms).toBeGreaterThan(budgetMs);
    // The outcome is the set accepted first: its judgement, its model.yaml.
    expect(report.met).toBe(true);
    expect(report.after!.profile.latencyMs.p99).toBe(report.judgements![0]!.p99Ms);
    expect(report.after!.margin!.diagnosis.met).toBe(true);
    expect(report.changes.yamlDiff).toContain('kind: worker');
    expect(report.changes.modelYaml).not.toContain('batching');
    expect(trialOf(report, 'worker-instance').outcome).toBe('kept');
    const batching = trialOf(report, 'batching-network');
    expect(batching.outcome).toBe('dropped');
    expect(batching.detail).toMatch(
      /^batching on: max_batch_size 32, max_queue_delay_us 200; kept, but judged with it on a fresh server p99 read \d+\.\d\d ms: the set accepted before it stays$/,
    );
    expect(lines.at(-1)).toMatch(
      /back to the remedies accepted before \(worker-instance\): judged with batching-network as well, p99 missed the budget or its margin/,
    );
  }, 120_000);

  it('keys a change by what it serves: the loaded configuration and the model file bytes, not the edits or the path', async () => {
    const dir = addModel('keyed', heavyConfig('keyed'), heavyMatMulModel({ rows: 8, width: 16, lossy: false }));
    const source = await resolveModelSource(dir);
    const two = [
      { path: ['instances', 'count'], value: 2 },
      { path: ['instances', 'kind'], value: 'worker' },
      { path: ['instances', 'intra_op_threads'], value: 1 },
    ];
    const key = servedConfigKey(source, { edits: two });
    // The same settings in another order, with a setting restated at its value: the same served configuration.
    expect(servedConfigKey(source, { edits: [two[2]!, two[1]!, two[0]!, { path: ['name'], value: 'keyed' }] })).toBe(
      key,
    );
    expect(servedConfigKey(source, { edits: two.slice(0, 2) })).toBe(key);
    expect(servedConfigKey(source, { edits: [two[0]!] })).not.toBe(key);
    expect(servedConfigKey(source, { edits: [] })).not.toBe(key);
    // The same bytes elsewhere serve the same model; other bytes do not.
    const copy = join(work, 'keyed-copy.onnx');
    writeFileSync(copy, readFileSync(source.modelPath));
    expect(servedConfigKey(source, { edits: two, modelFile: copy })).toBe(key);
    const other = join(work, 'keyed-other.onnx');
    writeFileSync(other, Buffer.concat([readFileSync(source.modelPath), Buffer.from([0])]));
    expect(servedConfigKey(source, { edits: two, modelFile: other })).not.toBe(key);
  });

  it('measures a served configuration once: the instances remedies of each stage plan the same 1 → 2 workers', async () => {
    const dir = addModel('twice', heavyConfig('twice'), heavyMatMulModel({ rows: 64, width: 256, lossy: false }));
    // Servers with 2 instances answer through a link that holds each request 150 ms: measured, they lose for sure (at
    // 30 ms, a loaded machine's stalls made the in-thread side's p99 slower once in a CI run, and the candidate was kept).
    const served: string[] = [];
    const startServer = async (modelDir: string) => {
      const yaml = readFileSync(join(modelDir, 'model.yaml'), 'utf8');
      served.push(yaml);
      return startServerBehindHold(modelDir, /count: 2\b/.test(yaml) ? 150 : 0);
    };
    const report = await runDoctor({
      model: dir,
      // Every stage with a mean of 4 µs is a culprit: inference and network at least, each with its instances remedy.
      budgetMs: 0.01,
      load: { mode: 'concurrency', concurrency: 2 },
      data: { source: 'rows', documents: heavyRows(100, 11).map(({ x }) => ({ x })) },
      remedies: ['instances-inference', 'instances-queue', 'instances-network'],
      windowMs: 300,
      startServer,
    });
    // Served as is, then the one candidate: nothing kept, so no verdict server.
    expect(served).toHaveLength(2);
    expect(served.filter((yaml) => /count: 2\b/.test(yaml))).toHaveLength(1);
    const [measured, ...again] = report.trials;
    expect(measured!.remedy).toMatch(/^instances-/);
    expect(measured!.outcome).toBe('dropped');
    expect(measured!.sameAs).toBeUndefined();
    expect(measured!.p99AfterMs!).toBeGreaterThan(150);
    expect(again.length).toBeGreaterThanOrEqual(1);
    const table = formatTrials(report.trials).split('\n');
    for (const trial of again) {
      expect(trial.remedy).toMatch(/^instances-/);
      expect(trial.remedy).not.toBe(measured!.remedy);
      expect(trial.outcome).toBe('dropped');
      expect(trial.sameAs).toBe(measured!.remedy);
      expect(trial.detail).toBe(
        `same change as ${measured!.remedy}: dropped, not measured again (instances 1 in_thread → 2 worker × 1 thread)`,
      );
      expect(trial.p99BeforeMs).toBe(measured!.p99BeforeMs);
      expect(trial.p99AfterMs).toBe(measured!.p99AfterMs);
      expect(trial.profile).toBeUndefined();
      const p99 = `${measured!.p99BeforeMs!.toFixed(2)} → ${measured!.p99AfterMs!.toFixed(2)}`;
      expect(table).toContain(
        `${trial.remedy.padEnd(22)} ${trial.stage.padEnd(11)} ${'dropped'.padEnd(8)} ${p99.padStart(16)}  ${trial.detail}`,
      );
    }
    expect(report.after).toBeUndefined();
  }, 120_000);

  it('names the remedies left once --budget-minutes is spent on one progress line, one skipped entry each', async () => {
    const dir = addModel('spent', heavyConfig('spent'), heavyMatMulModel({ rows: 64, width: 256, lossy: false }));
    const lines: string[] = [];
    let servers = 0;
    const report = await runDoctor({
      model: dir,
      budgetMs: 0.01,
      load: { mode: 'concurrency', concurrency: 1 },
      data: { source: 'rows', documents: heavyRows(100, 12).map(({ x }) => ({ x })) },
      remedies: ['intra-op-threads', 'instances-inference', 'batching-inference'],
      // 60 ms: spent during the first measurement, before any remedy starts.
      budgetMinutes: 0.001,
      windowMs: 300,
      onProgress: (line) => lines.push(line),
      startServer: (modelDir) => {
        servers++;
        return startServerInProcess(modelDir);
      },
    });
    expect(servers).toBe(1);
    const ids = ['intra-op-threads', 'instances-inference', 'batching-inference'];
    expect(report.trials).toEqual(
      ids.map((remedy) => ({
        remedy,
        stage: 'inference',
        title: REMEDIES.find((r) => r.id === remedy)!.title,
        outcome: 'skipped',
        detail: '--budget-minutes 0.001 spent',
        p99BeforeMs: report.before.profile.latencyMs.p99,
        p99AfterMs: null,
        budgetSpent: true,
        seconds: 0,
      })),
    );
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      /^\[2\/2\] not tried, time budget spent: intra-op-threads, instances-inference, batching-inference {2}\(/,
    );
    expect(formatTrials(report.trials).split('\n').slice(1)).toEqual([
      'not tried, time budget spent: intra-op-threads, instances-inference, batching-inference',
    ]);
    expect(report.after).toBeUndefined();
  }, 120_000);

  it('drops a shorter store timeout that only hides the slow store: the answers would fall back to defaults', async () => {
    const report = await runDoctor({
      model: featureModelDir,
      budgetMs: 40,
      load: { mode: 'concurrency', concurrency: 2 },
      data: featureRequests,
      remedies: ['features-timeout'],
      windowMs: 400,
      startServer: startServerInProcess,
    });
    expect(report.before.diagnosis.culprits).toContain('features');
    const trial = trialOf(report, 'features-timeout');
    expect(trial.outcome).toBe('refused');
    expect(trial.degradedShare!).toBeGreaterThan(0.5);
    expect(trial.detail).toMatch(/fell back to default features/);
    expect(report.after).toBeUndefined();
    expect(report.changes.yamlDiff).toBe('');
  }, 120_000);

  it('reads a running server read-only with --url: the breakdown, no remedy tried', async () => {
    const server = await startServerInProcess(featureModelDir);
    try {
      const report = await runDoctor({
        model: 'scored',
        url: server.url,
        budgetMs: 40,
        load: { mode: 'concurrency', concurrency: 2 },
        windowMs: 300,
      });
      expect(report.readOnly).toBe(true);
      expect(report.before.diagnosis.culprits[0]).toBe('features');
      expect(report.trials).toEqual([]);
      expect(report.data.source).toContain('OpenAPI');
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('refuses an INT8 model that loses the decision on the evaluation data (the accuracy guard)', async () => {
    const dir = addModel('lossy', heavyConfig('lossy'), heavyMatMulModel({ rows: 256, width: 512, lossy: true }));
    const rows = heavyRows(200, 3);
    const evalFile = writeJsonl(join(work, 'lossy-eval.jsonl'), rows);
    const report = await runDoctor({
      model: dir,
      budgetMs: 1,
      load: { mode: 'concurrency', concurrency: 1 },
      data: { source: 'rows', documents: rows.map(({ x }) => ({ x })) },
      eval: evalFile,
      label: 'label',
      maxDrop: 1,
      remedies: ['int8-dynamic'],
      windowMs: 300,
      startServer: startServerInProcess,
    });
    expect(report.before.diagnosis.culprits).toContain('inference');
    const trial = trialOf(report, 'int8-dynamic');
    expect(trial.outcome).toBe('refused');
    expect(trial.detail).toMatch(/accuracy drops .* more than --max-drop 1 pt/);
    expect(trial.guard!.accuracyBefore).toBe(1);
    expect(trial.guard!.accuracyAfter!).toBeLessThan(0.9);
    expect(report.changes.modelFile).toBeUndefined();
    expect(report.after).toBeUndefined();
  }, 120_000);

  it('waits after a round until the server has answered the queue the round left behind', async () => {
    // On a worker thread, so the statistics answer while the queue is worked off.
    const config = { ...heavyConfig('backlog'), instances: { count: 1, kind: 'worker', intra_op_threads: 1 } };
    const dir = addModel('backlog', config, heavyMatMulModel({ rows: 256, width: 512, lossy: false }));
    const server = await startServerInProcess(dir);
    const count = async () => (await fetchServerStats(server.url, 'backlog'))!.inferenceCount;
    try {
      // 40 requests at once (~10 ms each here), their clients gone after the first answers: a queue the server still
      // answers.
      const abort = new AbortController();
      const [row] = heavyRows(1, 4);
      const sent = Array.from({ length: 40 }, () =>
        fetch(`${server.url}${inferencePath('predict', 'backlog')}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ x: row!.x }),
          signal: abort.signal,
        }).catch(() => undefined),
      );
      // The clients go once the server has answered some: the rest are queued there.
      for (let waited = 0; (await count()) === 0 && waited < 20_000; waited += 50)
        await new Promise((resolve) => setTimeout(resolve, 50));
      abort.abort();
      await Promise.all(sent);
      await settleServer(server.url, 'backlog');
      const settled = await count();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await count()).toBe(settled);
      expect(settled).toBeGreaterThan(0);
    } finally {
      await server.stop();
    }
  }, 60_000);

  it('primes a fresh server before its rounds: its first answers and the backlog they leave are done with', async () => {
    const dir = addModel('primed', heavyConfig('primed'), heavyMatMulModel({ rows: 128, width: 512, lossy: false }));
    const server = await startModelServer(dir);
    const count = async () => (await fetchServerStats(server.url, 'primed'))!.inferenceCount;
    try {
      expect(await count()).toBe(0);
      const data = { source: 'rows', documents: heavyRows(50, 6).map(({ x }) => ({ x })) };
      // Open loop above what the in-thread instance answers: priming leaves a queue, which settling waits out.
      await primeServer({ url: server.url, model: 'primed', data, load: { mode: 'rate', rate: 2000 }, ms: 300 });
      await settleServer(server.url, 'primed');
      const primed = await count();
      expect(primed).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await count()).toBe(primed);
    } finally {
      await server.stop();
    }
  }, 60_000);

  it('tries dynamic batching for the time outside the stages when the server falls behind an open-loop rate', async () => {
    // The in-thread instance blocks the event loop for each request, offered well past what it answers: the wait
    // shows outside the server's stages (network), and the server answers less than the offered rate.
    // 128 × 512 (0.7 ms of CPU a request, plus HTTP): 3000 requests/s is over twice what it answers on an idle core.
    const dir = addModel('behind', heavyConfig('behind'), heavyMatMulModel({ rows: 128, width: 512, lossy: false }));
    const rate = 3000;
    const report = await runDoctor({
      model: dir,
      budgetMs: 1,
      load: { mode: 'rate', rate },
      data: { source: 'rows', documents: heavyRows(100, 8).map(({ x }) => ({ x })) },
      remedies: ['batching-network'],
      windowMs: 300,
    });
    expect(report.before.diagnosis.culprits[0]).toBe('network');
    expect(report.before.profile.throughput).toBeLessThan(rate * 0.97);
    expect(report.trials[0]!.remedy).toBe('batching-network');
    const batching = trialOf(report, 'batching-network');
    expect(batching.detail).toContain('batching on: max_batch_size 32');
    // Measured, not guessed: alternated rounds against the in-thread model, whichever way they went.
    expect(batching.p99AfterMs).toBeGreaterThan(0);
    expect(batching.profile!.requests).toBeGreaterThan(0);
  }, 120_000);

  it("reads a fresh server's first answers as the cold path and tries warm-up on fresh servers when they miss the budget", async () => {
    const dir = addModel('cold', heavyConfig('cold'), heavyMatMulModel({ rows: 256, width: 512, lossy: false }));
    const report = await runDoctor({
      model: dir,
      budgetMs: 1,
      load: { mode: 'concurrency', concurrency: 1 },
      data: { source: 'rows', documents: heavyRows(100, 9).map(({ x }) => ({ x })) },
      remedies: ['warmup'],
      windowMs: 300,
    });
    // The warm-up period's answers, left out of the windows, are the cold figure of the fresh server.
    const cold = report.before.profile.cold!;
    expect(cold.requests).toBeGreaterThan(0);
    expect(cold.p99Ms).toBeGreaterThan(1);
    expect(report.before.diagnosis.findings.some((f) => f.startsWith('cold start: the first'))).toBe(true);
    // Warm-up tried on a fresh server and judged on its first answers, kept or dropped by the 10% rule.
    const trial = trialOf(report, 'warmup');
    expect(trial.detail).toContain('warmup.runs 2 → 5, warmup.batch_size 1 → 1');
    expect(trial.p99BeforeMs).toBe(cold.p99Ms);
    expect(trial.p99AfterMs).toBe(trial.profile!.cold!.p99Ms);
    expect(trial.outcome).toBe(trial.p99AfterMs! <= cold.p99Ms * 0.9 ? 'kept' : 'dropped');
    if (trial.outcome === 'kept') expect(report.changes.yamlDiff).toContain('+  runs: 5');
  }, 120_000);

  it('names inference for a heavy MatMul, keeps INT8 under the guard, and --apply/--register/--report write what they say', async () => {
    // The model's cost, not a stall of a busy machine, must set the p99 compared: 128 positions × 2048 wide (~11 ms of
    // CPU a request here in float, ~4 ms in INT8, 2.6×; 512 × 512 was 2.7 vs 1.45 ms, and on a loaded machine its p99
    // was the stalls', 80-150 ms, so INT8 moved it by 10% about one run in two), and 4 connections on the in-thread
    // instance, so each request waits for the ones before it: the model's time counts about four times in each answer.
    const dir = addModel('heavy', heavyConfig('heavy'), heavyMatMulModel({ rows: 128, width: 2048, lossy: false }));
    const rows = heavyRows(200, 5);
    const evalFile = writeJsonl(join(work, 'heavy-eval.jsonl'), rows);
    const dataFile = writeJsonl(
      join(work, 'heavy-requests.jsonl'),
      rows.map(({ x }) => ({ x })),
    );
    const original = createHash('sha256')
      .update(readFileSync(join(dir, '1', 'model.onnx')))
      .digest('hex');
    const registry = join(work, 'registry');
    const html = join(work, 'doctor.html');
    // The doctor's temporary folders go under a TMPDIR of its own, so other runs' folders do not count.
    const doctorTmp = join(work, 'tmp');
    mkdirSync(doctorTmp);
    const { stdout, stderr } = await exec(
      process.execPath,
      [
        bin,
        'doctor',
        '--model',
        dir,
        '--p99-ms',
        '2',
        '--concurrency',
        '4',
        '--data',
        dataFile,
        '--eval',
        evalFile,
        '--label',
        'label',
        '--remedies',
        'int8-dynamic',
        // 1 s windows in alternated rounds: enough answers per side that p99 is the model's, not one stall's.
        '--duration',
        '1',
        '--apply',
        '--register',
        'heavy_doctor',
        '--registry',
        registry,
        '--report',
        html,
        '--json',
      ],
      { env: { ...process.env, CALIPER_LOG_LEVEL: 'warn', TMPDIR: doctorTmp }, maxBuffer: 1 << 24 },
    );
    const report = JSON.parse(stdout) as DoctorReport;
    // A progress line per step, with an ETA.
    expect(stderr).toMatch(/\[1\/\d+\] diagnosis: p99 .* over budget: .*inference.*ETA/);
    expect(stderr).toMatch(/int8-dynamic: kept/);
    expect(report.before.diagnosis.culprits).toContain('inference');
    const trial = trialOf(report, 'int8-dynamic');
    expect(trial.outcome).toBe('kept');
    expect(trial.guard!.accuracyAfter!).toBeGreaterThanOrEqual(trial.guard!.accuracyBefore! - 0.01);
    expect(trial.p99AfterMs!).toBeLessThan(trial.p99BeforeMs! * 0.9);
    // The inference stage itself is faster, compared as the outcome is: the same alternated rounds, kept and candidate
    // (the before and after profiles are minutes apart on a machine whose load moves).
    expect(trial.keptProfile!.latencyMs.p99).toBe(trial.p99BeforeMs);
    expect(trial.profile!.meanMs.inference!).toBeLessThan(trial.keptProfile!.meanMs.inference!);

    // --apply: a new version folder with the INT8 model and its model.yaml; version 1 untouched.
    expect(report.applied).toEqual({ dir: join(dir, '2'), version: 2 });
    const applied = readFileSync(join(dir, '2', 'model.onnx'));
    expect(applied.includes(Buffer.from('MatMulInteger'))).toBe(true);
    // The optimized model the report names is the applied version's; doctor's work folder is gone.
    expect(report.changes.modelFile).toBe(join(dir, '2', 'model.onnx'));
    expect(readdirSync(doctorTmp).filter((n) => n.startsWith('caliper-doctor-'))).toEqual([]);
    expect(existsSync(join(dir, '2', 'model.yaml'))).toBe(true);
    expect(
      createHash('sha256')
        .update(readFileSync(join(dir, '1', 'model.onnx')))
        .digest('hex'),
    ).toBe(original);

    // --register: a registry version in Staging, the report's figures as its metrics.
    expect(report.registered).toEqual({ name: 'heavy_doctor', version: 1, stage: 'Staging' });
    const reg = await ModelRegistry.connect({ registry });
    try {
      const version = await reg.version('heavy_doctor', 1);
      expect(version.stage).toBe('Staging');
      expect(version.metrics.p99_before_ms).toBe(report.before.profile.latencyMs.p99);
      expect(version.metrics.p99_after_ms).toBe(report.after!.profile.latencyMs.p99);
      expect(version.tags.doctor_remedies).toBe('int8-dynamic');
      expect(version.size).toBe(applied.length);
    } finally {
      await reg.close();
    }

    // --report: the outcome table and the waterfall chart, as a browser renders them.
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${html}`);
      const cells = await page.locator('table').nth(1).locator('tbody tr').first().locator('td').allTextContents();
      expect(cells.slice(0, 3)).toEqual(['INT8 dynamic quantization', 'inference', 'kept']);
      const segments = page.locator('svg.waterfall rect.segment[data-stage="inference"]');
      expect(await segments.count()).toBe(3); // before, + int8-dynamic, after
      const widths = await segments.evaluateAll((rects) => rects.map((r) => r.getBoundingClientRect().width));
      // Drawn to scale: before and after in the ratio of their inference figures of the p99 tail.
      const figures = [report.before.profile, report.after!.profile].map((p) => p.tailMs.inference!);
      expect(Math.abs(widths[2]! - (widths[0]! * figures[1]!) / figures[0]!)).toBeLessThan(1); // px (rounded to 0.1)
      expect(await page.locator('svg.waterfall line.budget').count()).toBe(1);
      expect(await page.locator('pre.diff').count()).toBe(0); // only the model file changed
    } finally {
      await browser.close();
    }
  }, 240_000);
});
