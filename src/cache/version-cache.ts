import type { CacheSpec, ModelConfig } from '../config/model-config.ts';
import { MemoryCache } from './memory-cache.ts';
import { RedisCache } from './redis-cache.ts';
import type { ResponseCache } from './response-cache.ts';
import { stringifyExactJson } from '../runtime/exact-json.ts';

/**
 * The response cache of one served version, built at load from model.yaml `cache` (undefined when it does not
 * enable one). The loaded version owns it and closes it at unload. Shared (Redis) keys carry the version's answer
 * fingerprint: the model file's bytes, the answer-shaping model.yaml, the hook module and Caliper's answer format.
 * Serving a new version, a retrained file or an edited model.yaml therefore starts from an empty cache: old
 * answers are never returned.
 */
export function openVersionCache(
  config: Pick<ModelConfig, 'name' | 'cache'>,
  version: number,
  answerFingerprint: string | undefined,
): ResponseCache | undefined {
  if (!config.cache.enabled) return undefined;
  return createResponseCache(
    config.cache,
    `caliper:cache:${config.name}:${version}:${answerFingerprint ?? 'unfingerprinted'}:`,
  );
}

export function createResponseCache(spec: CacheSpec, namespace: string): ResponseCache {
  const ttlMs = spec.ttlS * 1000;
  if (spec.backend === 'redis') return new RedisCache({ url: spec.redisUrl!, namespace, ttlMs });
  return new MemoryCache({ maxEntries: spec.maxEntries, maxBytes: spec.maxBytes, ttlMs });
}

/** The canonical form of a validated request: rows hold the declared fields in declared order, defaults filled. */
export function canonicalRequestKey(rows: readonly Record<string, unknown>[]): string {
  return stringifyExactJson(rows);
}
