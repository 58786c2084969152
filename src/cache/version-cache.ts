import type { CacheSpec } from '../config/model-config.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { MemoryCache } from './memory-cache.ts';
import { RedisCache } from './redis-cache.ts';
import type { ResponseCache } from './response-cache.ts';
import { stringifyExactJson } from '../runtime/exact-json.ts';

/**
 * One response cache per served version, built on first use from model.yaml `cache`. A cache belongs to
 * one loaded version, and shared (Redis) keys carry the version's answer fingerprint: the model file's
 * bytes, the answer-shaping model.yaml, the hook module and Caliper's answer format. Serving a new version,
 * a retrained file or an edited model.yaml therefore starts from an empty cache: old answers are never returned.
 */
const caches = new WeakMap<ModelVersion, ResponseCache | null>();

export function createResponseCache(spec: CacheSpec, namespace: string): ResponseCache {
  const ttlMs = spec.ttlS * 1000;
  if (spec.backend === 'redis') return new RedisCache({ url: spec.redisUrl!, namespace, ttlMs });
  return new MemoryCache({ maxEntries: spec.maxEntries, maxBytes: spec.maxBytes, ttlMs });
}

/** The version's cache, or undefined when model.yaml does not enable one. */
export function responseCacheOf(version: ModelVersion): ResponseCache | undefined {
  let cache = caches.get(version);
  if (cache === undefined) {
    const spec = version.config.cache;
    cache = spec.enabled
      ? createResponseCache(
          spec,
          `caliper:cache:${version.name}:${version.version}:${version.answerFingerprint ?? 'unfingerprinted'}:`,
        )
      : null;
    caches.set(version, cache);
  }
  return cache ?? undefined;
}

/** Frees the version's cache (its entries, its Redis connection) when the version stops being served. */
export async function releaseResponseCache(version: ModelVersion): Promise<void> {
  const cache = caches.get(version);
  caches.set(version, null);
  if (cache) await cache.close();
}

/** The canonical form of a validated request: rows hold the declared fields in declared order, defaults filled. */
export function canonicalRequestKey(rows: readonly Record<string, unknown>[]): string {
  return stringifyExactJson(rows);
}
