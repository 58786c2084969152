import { statSync } from 'node:fs';
import type { CacheSpec } from '../config/model-config.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { MemoryCache } from './memory-cache.ts';
import { RedisCache } from './redis-cache.ts';
import type { ResponseCache } from './response-cache.ts';

/**
 * One response cache per served version, built on first use from model.yaml `cache`. Because a cache
 * belongs to one version (and Redis keys carry the version and the model file's fingerprint), serving a
 * new version starts from an empty cache: old answers are never returned for it.
 */
const caches = new WeakMap<ModelVersion, ResponseCache | null>();

function fingerprintOf(modelPath: string): string {
  try {
    const stat = statSync(modelPath);
    return `${stat.size.toString(36)}.${Math.round(stat.mtimeMs).toString(36)}`;
  } catch {
    return 'unknown';
  }
}

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
    cache = spec.enabled ? createResponseCache(spec, `caliper:cache:${version.name}:${version.version}:${fingerprintOf(version.modelPath)}:`) : null;
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
  return JSON.stringify(rows);
}
